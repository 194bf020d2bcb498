"""The data: train/val/test loaders. Edit load() to bring your own dataset from __data__/."""
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from utils import paths


def load(args):
    """All samples as (x, y) tensors. x: float (N, 1, 8, 8) in [0, 1], y: int64 (N,)."""
    if args.data == "digits":
        from sklearn.datasets import load_digits  # bundled with scikit-learn: no download
        digits = load_digits()
        x, y = digits.images / 16.0, digits.target
    else:
        # Your own dataset: put it under __data__/<name>/ and read it here, e.g. arrays saved
        # with np.savez(__data__/<name>/data.npz, x=..., y=...), then run with data=<name>.
        arrays = np.load(paths.data() / args.data / "data.npz")
        x, y = arrays["x"], arrays["y"]
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() == 3:
        x = x.unsqueeze(1)  # add the channel axis
    return x, torch.as_tensor(y, dtype=torch.int64)


def split(n, args):
    """Indices of train/val/test, drawn from split_seed so that every run sees the same split."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(args.split_seed))
    n_val, n_test = int(n * args.val_ratio), int(n * args.test_ratio)
    return order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]


def build(args, seed, rank=0, world_size=1):
    """Three DataLoaders. Under DDP each process reads its own shard of every split."""
    x, y = load(args)
    loaders = []
    for name, idx in zip(("train", "val", "test"), split(len(y), args)):
        train = name == "train"
        if world_size > 1 and not train:
            idx = idx[rank::world_size]  # a disjoint shard, no padding: metrics cover the split once
        data = TensorDataset(x[idx], y[idx])
        sampler = (DistributedSampler(data, world_size, rank, shuffle=True, seed=seed)
                   if world_size > 1 and train else None)
        # Shuffling from a generator reseeded each epoch (see reseed) makes the order a function
        # of (seed, epoch): a continued run sees the batches an uninterrupted one would.
        generator = torch.Generator().manual_seed(seed) if train and sampler is None else None
        loaders.append(DataLoader(
            data, batch_size=args.batch_size, shuffle=train and sampler is None,
            sampler=sampler, generator=generator, num_workers=args.num_workers,
            pin_memory=args.pin_memory, persistent_workers=args.num_workers > 0))
    return loaders


def reseed(loader, seed, epoch):
    """Fix the shuffle of this epoch: call it before each training epoch."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    elif loader.generator is not None:
        loader.generator.manual_seed(seed * 100003 + epoch)
