"""Everything training needs to continue exactly, and its checkpoints on disk."""
import os
import random
import re
import time
from pathlib import Path

import numpy as np
import torch

from utils import atomic, distributed

EPOCH_FILE = re.compile(r"epoch_(\d+)\.pth")
STATE_KEYS = {"model", "optimizer", "scheduler", "epoch", "best", "best_epoch", "stale", "rng"}  # what a resume needs


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
    with atomic.writing(directory / name) as f:
        torch.save(snapshot, f)  # straight into the file: no second copy of it in memory
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
    others = [p for p in epoch_files(directory)[::-1] if p.name not in pinned]
    for p in others[:-keep]:
        p.unlink()


def epoch_files(directory):
    """The folder's epoch_<n>.pth, newest epoch first."""
    if not directory.is_dir():
        return []
    found = [(int(m[1]), p) for p in directory.iterdir() if (m := EPOCH_FILE.fullmatch(p.name))]
    return [p for _, p in sorted(found, key=lambda f: f[0], reverse=True)]


class Unloadable(Exception):
    """A checkpoint that does not load: `path`, and `why` in a few words."""

    def __init__(self, path, why):
        super().__init__(Path(path), why)
        self.path, self.why = Path(path), why

    def __str__(self):
        return f"{self.path.parent.name}/{self.path.name} ({self.why})"


def listing(errors, most=3):
    """`checkpoint/epoch_7.pth (truncated), ...`: the skipped files in one line."""
    named = ", ".join(map(str, errors[:most]))
    return named + (f" and {len(errors) - most} more" if len(errors) > most else "")


def resume_point(directory):
    """Where a continued run goes on from: (checkpoint, skipped), the newest checkpoint in
    `directory` that loads and the newer ones that do not (Unloadable). Tried in order: the file
    epoch_last points at (the last write's own word), then every epoch file, newest first.
    None loads: Unloadable for the folder, listing them, and nothing changed in it."""
    last = directory / "epoch_last.pth"
    named = [directory / os.readlink(last)] if last.is_symlink() else []
    skipped = []
    for path in dict.fromkeys(named + epoch_files(directory)):
        try:
            ckpt = loaded(path, STATE_KEYS)
        except Unloadable as err:
            skipped.append(err)
            continue
        remove_temporaries(directory)  # the run goes on, and will write here
        return ckpt, skipped
    raise Unloadable(directory, listing(skipped) or "no epoch file")


def best_checkpoint(directory, epoch):
    """The best epoch's weights for the test: (path, checkpoint) from epoch_best.pth, else from
    epoch_<epoch>.pth, each only if it holds that epoch, or None; and the files skipped."""
    best, own = directory / "epoch_best.pth", directory / f"epoch_{epoch}.pth"
    skipped = []
    for path in [best] + ([own] if os.path.realpath(own) != os.path.realpath(best) else []):
        try:
            ckpt = loaded(path, {"model", "epoch"})
        except Unloadable as err:
            skipped.append(err)
            continue
        if ckpt["epoch"] == epoch:
            return (path, ckpt), skipped
        skipped.append(Unloadable(path, f"holds epoch {ckpt['epoch']}, not the best {epoch}"))
    return None, skipped


def remove_temporaries(directory):
    """Remove what killed writes left: `.epoch_<n>.pth.*.tmp` (atomic.write_bytes) and
    `.epoch_last.pth.tmp` (point()). No link names them, and none belongs to a live write: one
    process owns a run folder (its lock), and this one writes only after every rank resumed."""
    for tmp in directory.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def loaded(path, keys):
    """A checkpoint that loads and holds `keys`, or Unloadable."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or not keys <= ckpt.keys():
        raise Unloadable(path, "not a training state")
    return ckpt


def load_checkpoint(path, map_location="cpu"):
    """A checkpoint's contents, or Unloadable saying why not. weights_only: a checkpoint is data,
    not code (the state holds only tensors and plain types), so one that carries code is refused,
    and torch's advice to load it with weights_only=False is not passed on."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 -- anything else torch.load raises is the file's fault
        raise Unloadable(path, why_unloadable(path, err)) from None


def why_unloadable(path, err):
    """A few words on a checkpoint that does not load."""
    if isinstance(err, FileNotFoundError):
        return "missing"
    if isinstance(err, OSError):
        return err.strerror or str(err)
    code = re.search(r"GLOBAL ([\w.]+)", str(err))
    if code:  # weights_only's refusal of a pickled function or class
        return f"carries code: {code[1]}, refused"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as gone:
        return gone.strerror or str(gone)
    if not head:
        return "empty"
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        return "not a PyTorch checkpoint"
    if "central directory" in str(err):  # a zip's index is at its end
        return "truncated"
    return f"damaged: {str(err).splitlines()[0][:120]}"


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
