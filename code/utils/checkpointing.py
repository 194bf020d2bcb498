"""What a run's state is and how it goes to disk: the loop names what has state (`run.track(...)`),
this module snapshots it, writes it and loads it back (utils/cadence.py decides when;
utils/checkpoints.py names the files).

What a checkpoint holds: under its own name, the state_dict() of every model, optimizer,
scheduler and GradScaler tracked (rank 0's: DDP keeps them equal on every rank); in `ranks`, one
entry per process: its RNGs, its training metrics summed so far, and the state_dict() of every
other object tracked (data loaders, datasets, your own objects: each process has its own
position). A data loader's position is kept inside an epoch; at an epoch's end, the state of
the generators it shuffles with (a new epoch starts it afresh, drawing from them).

Memory: a state of at most `checkpoint_copy_mb` is copied to host memory (pinned on CUDA) and
written on the Recorder's writer thread while training goes on; a new best's copy is held there
until the next write. A larger state is never copied: it is written from the live state while
training waits, and a new best is written when it happens.
"""
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from utils import checkpoints, distributed
from utils.runs import BEST, LAST
from utils.snapshot import rng_states, set_rng_states, tensor_bytes, to_host

SHARED = (torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.amp.GradScaler)
# The clock's counters: {key in a checkpoint: the Session's attribute}
COUNTERS = {"epoch": "epoch", "step": "in_epoch", "steps": "steps", "best": "best", "best_epoch": "best_epoch",
            "best_step": "best_step", "best_steps": "best_steps", "stale": "stale", "evaluations": "evaluations",
            "names": "names"}
RESERVED = set(COUNTERS) | {"ranks", "rng", "sums", "event"}  # the tree's and each part's own keys


@dataclass
class Policy:
    """When and how checkpoints are written: config.py's checkpoint_* values."""
    directory: Path
    keep: int = 2            # files kept besides those last and best name; 0 keeps all
    every: int = 1           # evaluations between checkpoints
    interval: float = 0.0    # seconds at least between checkpoints (a best, the last and a stop aside)
    steps: int = 0           # optimizer steps between step checkpoints; 0: none inside an epoch
    copy_mb: float = 256.0   # states up to this size are copied and written in the background
    writer: object = None    # runs writes off the training loop: anything with submit(fn, *args)

    @classmethod
    def of(cls, args, directory, writer=None):
        return cls(Path(directory), args.keep_checkpoints, args.checkpoint_every, args.checkpoint_interval,
                   args.checkpoint_steps, args.checkpoint_copy_mb, writer)


class Mismatch(Exception):
    """A checkpoint that does not hold what the loop tracks (utils/session.py: one line)."""


def is_loader(obj):
    return isinstance(obj, torch.utils.data.DataLoader)


def inexact(loader):
    """Why a continued epoch of this loader may draw other batches than one never stopped, or None.
    A sampler that draws along the epoch from a generator the loop reseeds each epoch, or one
    that cannot say where it is (torchdata fast-forwards it, drawing again), is not exact."""
    for sampler in (loader.sampler, getattr(loader.batch_sampler, "sampler", None)):
        if type(sampler) is torch.utils.data.RandomSampler:
            return "is torch's RandomSampler, which cannot say where it is in an epoch"
        if getattr(sampler, "replacement", False):
            return "draws with replacement as the epoch goes"
    return None


def generators(loader):
    """The torch.Generators a loader and its samplers draw from (each once)."""
    found = []
    for owner in (loader, loader.sampler, getattr(loader.batch_sampler, "sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not f for f in found):
            found.append(g)
    return found


def position(obj, mid):
    """What a tracked object's process saves. A loader inside an epoch: its state_dict(); at an
    epoch's end only its generators' states (its finished iterator's state would start the next
    epoch elsewhere than a run never stopped, and would undo a reseed)."""
    if not is_loader(obj):
        return obj.state_dict()
    shuffles = {"generators": [g.get_state() for g in generators(obj)]}
    return {**shuffles, "loader": obj.state_dict()} if mid else shuffles


def place(obj, state):
    """Back into a tracked object what position() saved. A loader inside an epoch: its position,
    its iterator made now (drawing any seeds from the global RNG before that is restored), then
    its generators as they were, so that the epochs after it shuffle as they would have."""
    if not is_loader(obj):
        obj.load_state_dict(state)
        return
    if "loader" in state:
        obj.load_state_dict(state["loader"])
        obj.state_dict()  # builds its iterator from the position
    for g, saved in zip(generators(obj), state["generators"]):
        g.set_state(saved)


class Checkpointer:
    """The tracked objects' state, snapshotted, written and loaded. `clock` is the run's
    (utils/session.py): its COUNTERS, and `sums` (the training metrics summed so far)."""

    def __init__(self, things, clock, policy):
        self.shared = {n: o for n, o in things.items() if isinstance(o, SHARED)}
        self.own = {n: o for n, o in things.items() if n not in self.shared}
        self.clock, self.policy = clock, policy
        self.held_best = None   # a host copy of the best evaluation until it is written (small states)
        self.copies = None      # whether this state is small enough to copy (decided once)
        self.writing = None     # the background write in flight
        self.written_at = time.monotonic()

    def since_write(self):
        return time.monotonic() - self.written_at

    def small(self):
        if self.copies is None:
            size = tensor_bytes([unwrap(o).state_dict() for o in self.shared.values()])
            self.copies = size <= self.policy.copy_mb * 2**20
        return self.copies

    def hold(self):
        """A host copy of this best evaluation until the next write (every rank gathers; rank 0 keeps it)."""
        self.held_best = self.snapshot(copy=True)

    def save(self, best=False):
        """A checkpoint of where training is now, written by rank 0 (with the held best before it)."""
        snap = self.snapshot(copy=self.small())
        self.written_at = time.monotonic()
        if distributed.is_main():
            self.write([snap] if snap else [], snap if best else None)

    def write(self, trees, best):
        """Held copies first, then `trees`; the training loop waits only for a write before this one."""
        if best is None and self.held_best is not None:  # a newer best makes the held one moot
            trees, best = [self.held_best, *trees], self.held_best
        self.held_best = None
        if self.writing is not None:
            self.writing.result()
        job = (self.policy.directory, trees, best, self.policy.keep, getattr(self.policy.writer, "flush_events", None))
        background = self.copies and self.policy.writer
        self.writing = self.policy.writer.submit(write_files, *job) if background else None
        if not background:
            write_files(*job)

    def flush(self):
        """Whichever way training ended (a crash too): the held best to disk."""
        if self.held_best and distributed.is_main():
            self.write([], None)

    def snapshot(self, copy):
        """Everything needed to go on from here, on rank 0 (None elsewhere): the live tensors,
        or with `copy` a host copy of them that training may run ahead of."""
        mid = self.clock.in_epoch > 0
        own = {n: position(o, mid) for n, o in self.own.items()}
        parts = distributed.gather({"rng": rng_states(), "sums": self.clock.tally.state(), **own})
        if parts is None:
            return None
        tree = {n: unwrap(o).state_dict() for n, o in self.shared.items()}
        tree.update({k: getattr(self.clock, a) for k, a in COUNTERS.items()}, ranks=parts)
        return to_host(tree) if copy else tree

    def load(self, ckpt):
        """Every tracked object, and this process's part, from a checkpoint; its counters."""
        for name, obj in self.shared.items():
            if name in ckpt:
                unwrap(obj).load_state_dict(ckpt[name])
            elif not isinstance(obj, torch.amp.GradScaler):  # files from before fp16 have none: a fresh one is theirs
                held = ", ".join(k for k in ckpt if k not in RESERVED)
                raise Mismatch(f"the checkpoint holds no {name!r} (it holds {held})")
        part = ckpt["ranks"][distributed.world()[0] % len(ckpt["ranks"])]  # a run may continue on fewer
        for name, obj in self.own.items():
            if name in part:
                place(obj, part[name])
        set_rng_states(part["rng"])  # last: a restored loader's new iterator drew its seeds before it
        return part.get("sums"), {a: ckpt[k] for k, a in COUNTERS.items() if k in ckpt}  # older files lack some


def write_files(directory, trees, best, keep, events=None):
    """Write `trees` (oldest first), point epoch_last at the newest and epoch_best at `best`, prune.
    `events` first: the TensorBoard events logged before this state reach the disk before it does
    (a continued run hides those after it, and has no way to log again those before)."""
    if events:
        events()
    for tree in trees:
        if "event" in tree:
            tree.pop("event").synchronize()  # its copies from the GPU have landed
    directory.mkdir(parents=True, exist_ok=True)
    names = [checkpoints.write(directory, tree) for tree in trees]
    for tree, name in zip(trees, names):
        if tree is best:
            checkpoints.point(directory / BEST, name)
    if names:
        checkpoints.point(directory / LAST, names[-1])
    checkpoints.prune(directory, keep)


def unwrap(obj):
    """The model itself, under DistributedDataParallel and torch.compile or not: its state_dict
    loads into the plain model. Anything else as it is."""
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    obj = obj.module if isinstance(obj, wrappers) else obj  # not any .module: an AveragedModel is whole
    return getattr(obj, "_orig_mod", obj)
