"""The data: train/val/test loaders. Edit load() to bring your own dataset from __data__/."""
import warnings

import numpy as np
import torch
from torch.utils.data import TensorDataset
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import StatefulDistributedSampler

from utils import paths

# torchdata 0.11 calls an API torch 2.13 deprecated, once per loader: noise in every log
warnings.filterwarnings("ignore", message="'set_vital' is deprecated")


def load(args):
    """All samples as (x, y) tensors: x float, (N, ...); y int64 class numbers, or float values to
    predict (your own data: whole numbers in data.npz's y are classes)."""
    if args.data == "digits":
        from sklearn.datasets import load_digits  # bundled with scikit-learn: no download
        digits = load_digits()
        x, y = digits.images[:, None] / 16.0, digits.target  # (N, 1, 8, 8) in [0, 1]; 10 classes
    elif args.data == "diabetes":
        from sklearn.datasets import load_diabetes  # bundled too: 442 patients, 10 scaled features
        x, y = load_diabetes(return_X_y=True)
        y = (y - y.mean()) / y.std()  # disease progression, standardised: predicting 0 scores an MSE of about 1
    else:
        # Your own dataset: put it under __data__/<name>/ and read it here, e.g. arrays saved
        # with np.savez(__data__/<name>/data.npz, x=..., y=...), then run with data=<name>.
        arrays = np.load(paths.data() / args.data / "data.npz")
        x, y = arrays["x"], arrays["y"]
        if x.ndim == 3:
            x = x[:, None]  # images without a channel axis
    target = torch.int64 if np.asarray(y).dtype.kind in "iub" else torch.float32
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=target)


def dims(x, y):
    """(the shape of one sample, the model's outputs: the number of classes, or 1 value)."""
    return tuple(x.shape[1:]), 1 if y.is_floating_point() else int(y.max()) + 1


def split(n, args):
    """Indices of train/val/test, drawn from split_seed so that every run sees the same split."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(args.split_seed))
    n_val, n_test = int(n * args.val_ratio), int(n * args.test_ratio)
    return order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]


def build(args, seed, rank=0, world_size=1):
    """Three DataLoaders and dims(). Under DDP each process reads its own shard of every split.
    Stateful (torchdata): a step checkpoint holds the training loader's position in its epoch."""
    if args.data == "stdlib":  # a language model's windows of characters (text.py)
        import text
        return text.build(args, seed, rank, world_size)
    x, y = load(args)
    loaders = []
    for name, idx in zip(("train", "val", "test"), split(len(y), args)):
        train = name == "train"
        if world_size > 1 and not train:
            idx = idx[rank::world_size]  # a disjoint shard, no padding: metrics cover the split once
        data = TensorDataset(x[idx], y[idx])
        sampler = (StatefulDistributedSampler(data, world_size, rank, shuffle=True, seed=seed)
                   if world_size > 1 and train else None)
        # Shuffling (and the loader's own seed) from a generator reseeded each epoch (see reseed)
        # makes the order a function of (seed, epoch): a continued run sees the batches an
        # uninterrupted one would, and starting an epoch draws nothing from torch's global RNG.
        generator = torch.Generator().manual_seed(seed + rank) if train else None
        loaders.append(StatefulDataLoader(
            data, batch_size=args.batch_size, shuffle=train and sampler is None,
            sampler=sampler, generator=generator, num_workers=args.num_workers,
            pin_memory=args.pin_memory, persistent_workers=args.num_workers > 0))
    return (*loaders, dims(x, y))


def reseed(loader, seed, epoch, rank=0):
    """Fix the shuffle of this epoch: call it before each training epoch."""
    if isinstance(loader.sampler, StatefulDistributedSampler):
        loader.sampler.set_epoch(epoch)
    loader.generator.manual_seed((seed + rank) * 100003 + epoch)
