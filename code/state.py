"""Everything training needs to continue exactly, and its checkpoints on disk."""
import io
import os
import random
import re
import time
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
        self.latest = None      # snapshot of the newest finished epoch, not written yet
        self.best_snapshot = None  # snapshot of the best epoch, not written yet
        self.written_at = time.monotonic()

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
            "model": copied(model.state_dict()),
            "optimizer": copied(self.optimizer.state_dict()),
            "scheduler": copied(self.scheduler.state_dict()),
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

    def keep(self, best):
        """Hold this epoch's full state in memory (cheap): what a checkpoint of it would hold.
        Every process calls it, since their RNG states are gathered; rank 0 keeps the result."""
        rngs = distributed.gather(rng_states())
        if rngs is not None:
            self.latest = {**self.state_dict(), "rng": rngs}
            if best:
                self.best_snapshot = self.latest

    def seconds_since_write(self):
        return time.monotonic() - self.written_at

    def write(self, directory, keep=0, background=None):
        """Write the kept snapshots to checkpoint/epoch_<n>.pth and point epoch_last (and
        epoch_best) at them. With a `background` executor (anything with submit()) the write
        happens off the training loop, in order. Nothing kept: nothing to do."""
        if self.latest is None:
            return None
        latest, best = self.latest, self.best_snapshot
        self.latest = self.best_snapshot = None
        self.written_at = time.monotonic()
        job = (write_checkpoints, Path(directory), latest, best, keep)
        return background.submit(*job) if background else job[0](*job[1:])

    def save(self, directory, best, keep=0, background=None):
        """keep() and write() at once: this epoch's checkpoint, now."""
        self.keep(best)
        return self.write(directory, keep, background)

    def load(self, path):
        self.load_state_dict(load_checkpoint(path))


def write_checkpoints(directory, latest, best, keep):
    """The best epoch's file (when it is not the latest) first, then the latest's."""
    directory.mkdir(parents=True, exist_ok=True)
    if best is not None and best is not latest:
        point(directory / "epoch_best.pth", write_checkpoint(directory, best))
    name = write_checkpoint(directory, latest)
    point(directory / "epoch_last.pth", name)
    if best is latest:
        point(directory / "epoch_best.pth", name)
    prune(directory, keep)


def write_checkpoint(directory, snapshot):
    name = f"epoch_{snapshot['epoch']}.pth"
    buffer = io.BytesIO()
    torch.save(snapshot, buffer)
    atomic.write_bytes(directory / name, buffer.getvalue())
    return name


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


def copied(tree):
    """Dicts, lists and tensors copied, the rest shared: a cheaper deepcopy of a state_dict,
    taken every epoch."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, dict):
        return {k: copied(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(copied(v) for v in tree)
    return tree


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
