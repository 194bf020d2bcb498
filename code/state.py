"""Everything training needs to continue exactly, and its checkpoints on disk."""
import copy
import io
import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from utils import atomic, distributed


class State:
    def __init__(self, model, optimizer, scheduler, best_mode="max"):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.best_mode = best_mode
        self.epoch = 0          # epochs completed
        self.best = None        # best value of the deciding metric so far
        self.best_epoch = 0
        self.stale = 0          # epochs since the last new best (early stopping)

    def update_best(self, value):
        """Record this epoch's deciding metric; True when it is a new best."""
        better = (self.best is None or (value > self.best if self.best_mode == "max" else value < self.best))
        if better:
            self.best, self.best_epoch, self.stale = value, self.epoch, 0
        else:
            self.stale += 1
        return better

    def state_dict(self):
        """A snapshot: copies, so training may go on while it is written."""
        model = unwrap(self.model)
        return {
            "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "scheduler": copy.deepcopy(self.scheduler.state_dict()),
            "epoch": self.epoch, "best": self.best, "best_epoch": self.best_epoch,
            "stale": self.stale,
        }

    def load_state_dict(self, ckpt):
        unwrap(self.model).load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.epoch, self.best = ckpt["epoch"], ckpt["best"]
        self.best_epoch, self.stale = ckpt["best_epoch"], ckpt["stale"]
        rank = distributed.world()[0]
        set_rng_states(ckpt["rng"][rank % len(ckpt["rng"])])  # one per process of the saving run

    def save(self, directory, best, keep=0, background=None):
        """Write checkpoint/epoch_<n>.pth and point epoch_last (and epoch_best when best) at it.

        Every process calls it (their RNG states are gathered); only rank 0 writes. With a
        `background` executor (anything with submit()) the write happens off the training loop.
        """
        rngs = distributed.gather(rng_states())
        if rngs is None:
            return None
        snapshot = {**self.state_dict(), "rng": rngs}
        job = (write_checkpoint, Path(directory), snapshot, best, keep)
        return background.submit(*job) if background else job[0](*job[1:])

    def load(self, path):
        self.load_state_dict(load_checkpoint(path))


def write_checkpoint(directory, snapshot, best, keep):
    directory.mkdir(parents=True, exist_ok=True)
    name = f"epoch_{snapshot['epoch']}.pth"
    buffer = io.BytesIO()
    torch.save(snapshot, buffer)
    atomic.write_bytes(directory / name, buffer.getvalue())
    point(directory / "epoch_last.pth", name)
    if best:
        point(directory / "epoch_best.pth", name)
    prune(directory, keep)


def point(link, target):
    """Replace a relative symlink atomically: the link is never missing."""
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def prune(directory, keep):
    """Remove old epoch files beyond `keep`; what last and best point at always stays."""
    if keep <= 0:
        return
    pinned = {os.readlink(directory / n) for n in ("epoch_last.pth", "epoch_best.pth")
              if (directory / n).is_symlink()}
    epochs = sorted((p for p in directory.glob("epoch_*.pth") if re.fullmatch(r"epoch_\d+\.pth", p.name)),
                    key=lambda p: int(p.stem.split("_")[1]))
    others = [p for p in epochs if p.name not in pinned]
    for p in others[:-keep]:
        p.unlink()


def load_checkpoint(path, map_location="cpu"):
    # weights_only: a checkpoint is data, not code. The state holds only tensors and plain types.
    return torch.load(path, map_location=map_location, weights_only=True)


def unwrap(model):
    """The model itself, under a DistributedDataParallel wrapper or not."""
    return getattr(model, "module", model)


def rng_states():
    np_state = np.random.get_state(legacy=False)
    states = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": np_state["state"]["pos"], "has_gauss": np_state["has_gauss"],
                  "gauss": np_state["gauss"]},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states):
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
