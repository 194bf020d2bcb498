"""What a run's state is and how it goes to disk: the loop names what has state (`run.track(...)`),
this module snapshots it, writes it and loads it back (utils/cadence.py decides when;
utils/checkpoints.py names the files).

What a checkpoint holds: under its own name, the state_dict() of every model, optimizer,
scheduler and GradScaler tracked (rank 0's: DDP keeps them equal on every rank); in `ranks`, one
entry per process: its RNGs, its training metrics summed so far, and the state_dict() of every
other object tracked (data loaders, datasets, your own objects: each process has its own
position). A data loader's position: utils/positions.py.

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
from utils.positions import is_loader, place, position
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
    interval: float = None   # seconds at least between checkpoints (a best, the last and a stop aside);
                             # None: by cost (utils/cadence.py)
    steps: int = 0           # optimizer steps between step checkpoints; 0: none inside an epoch
    copy_mb: float = 256.0   # states up to this size are copied and written in the background
    writer: object = None    # runs writes off the training loop: anything with submit(fn, *args)

    @classmethod
    def of(cls, args, directory, writer=None):
        return cls(Path(directory), args.keep_checkpoints, args.checkpoint_every, args.checkpoint_interval,
                   args.checkpoint_steps, args.checkpoint_copy_mb, writer)


class Mismatch(Exception):
    """A checkpoint that does not hold what the loop tracks (utils/session.py: one line)."""


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
        self.background_s = 0.0  # CPU time the writer thread spent on the last write it finished

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
        if distributed.is_main():
            self.write([snap] if snap else [], snap if best else None)
        self.written_at = time.monotonic()

    def write(self, trees, best):
        """Held copies first, then `trees`; the training loop waits only for a write before this one."""
        if best is None and self.held_best is not None:  # a newer best makes the held one moot
            trees, best = [self.held_best, *trees], self.held_best
        self.held_best = None
        if self.writing is not None:
            self.writing.result()  # one write at a time, in order
        directory, keep, writer = self.policy.directory, self.policy.keep, self.policy.writer
        events = getattr(writer, "flush_events", None)
        if self.copies and writer:  # host copies: the whole write off the loop
            self.writing = writer.submit(self.timed, write_files, directory, trees, best, keep, events)
            return
        staged = stage(directory, trees, best)  # the live state: training waits for its bytes only
        if writer:
            self.writing = writer.submit(self.timed, publish, directory, staged, keep, events)
        else:
            publish(directory, staged, keep, events)

    def timed(self, fn, *args):
        """fn(*args) on the writer thread, its CPU time kept: what it took from training (on a
        busy machine, the cores it used), not the waits for the disk."""
        start = time.thread_time()
        try:
            fn(*args)
        finally:
            self.background_s = time.thread_time() - start

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
    """Write `trees` (oldest first), point epoch_last at the newest and epoch_best at `best`, prune."""
    publish(directory, stage(directory, trees, best), keep, events)


def stage(directory, trees, best):
    """Each tree's bytes into its file, not yet visible: [(name, Staged, is best)]."""
    for tree in trees:
        if "event" in tree:
            tree.pop("event").synchronize()  # its copies from the GPU have landed
    directory.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        for tree in trees:
            staged.append((*checkpoints.stage(directory, tree), tree is best))
    except BaseException:
        for _, file, _ in staged:
            file.discard()
        raise
    return staged


def publish(directory, staged, keep, events=None):
    """The staged files durable and visible (oldest first), epoch_last at the newest, epoch_best
    at the best, then prune. `events` first: the TensorBoard events logged before this state
    reach the disk before it does (a continued run hides those after it, and has no way to log
    again those before)."""
    try:
        if events:
            events()
        for i, (name, file, best) in enumerate(staged):
            file.commit()
            staged[i] = (name, None, best)
            if best:
                checkpoints.point(directory / BEST, name)
    except BaseException:
        for _, file, _ in staged:
            if file:
                file.discard()
        raise
    if staged:
        checkpoints.point(directory / LAST, staged[-1][0])
    checkpoints.prune(directory, keep)


def unwrap(obj):
    """The model itself, under DistributedDataParallel and torch.compile or not: its state_dict
    loads into the plain model. Anything else as it is."""
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    obj = obj.module if isinstance(obj, wrappers) else obj  # not any .module: an AveragedModel is whole
    return getattr(obj, "_orig_mod", obj)
