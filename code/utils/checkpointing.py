"""When and how a run's state goes to disk: the loop names what has state (`run.track(...)`),
this module snapshots it, writes it and loads it back (utils/checkpoints.py names the files).

What a checkpoint holds: under its own name, the state_dict() of every model, optimizer,
scheduler and GradScaler tracked (rank 0's: DDP keeps them equal on every rank); in `ranks`, one
entry per process: its RNGs, its training metrics summed so far, and the state_dict() of every
other object tracked (data loaders, datasets, your own objects: each process has its own
position). A data loader's position is kept only inside an epoch: a new epoch starts it afresh.

When: at an evaluation every `checkpoint_every` evaluations, and inside an epoch every
`checkpoint_steps` optimizer steps, neither more often than every `checkpoint_interval`
seconds; a new best, the last evaluation and a stop (Ctrl-C, SIGTERM: at the next step's end)
always.

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
            "best_step": "best_step", "stale": "stale", "evaluations": "evaluations", "names": "names"}
RESERVED = set(COUNTERS) | {"ranks", "rng", "sums", "event"}  # the tree's and each part's own keys
STATE_KEYS = {"epoch", "ranks"}  # what every checkpoint of this format holds


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


def is_loader(obj):
    return isinstance(obj, torch.utils.data.DataLoader)


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
        job = (self.policy.directory, trees, best, self.policy.keep)
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
        own = {n: o.state_dict() for n, o in self.own.items() if mid or not is_loader(o)}
        sums = self.clock.sums
        parts = distributed.gather({"rng": rng_states(), "sums": sums.detach().cpu().clone() if sums is not None
                                    else None, **own})
        if parts is None:
            return None
        tree = {n: unwrap(o).state_dict() for n, o in self.shared.items()}
        tree.update({k: getattr(self.clock, a) for k, a in COUNTERS.items()}, ranks=parts)
        return to_host(tree) if copy else tree

    def load(self, ckpt):
        """Every tracked object, and this process's part, from a checkpoint; its counters."""
        for name, obj in self.shared.items():
            unwrap(obj).load_state_dict(ckpt[name])
        part = ckpt["ranks"][distributed.world()[0] % len(ckpt["ranks"])]  # a run may continue on fewer
        set_rng_states(part["rng"])
        for name, obj in self.own.items():
            if name in part:
                obj.load_state_dict(part[name])
        return part.get("sums"), {a: ckpt[k] for k, a in COUNTERS.items() if k in ckpt}  # older files lack some


def write_files(directory, trees, best, keep):
    """Write `trees` (oldest first), point epoch_last at the newest and epoch_best at `best`, prune."""
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


def resume_point(directory, world_size=1):
    """Where a continued run goes on from: (checkpoint, skipped), the newest checkpoint in
    `directory` that loads and the newer ones that do not (Unloadable), tried in the order of
    checkpoints.candidates(). A checkpoint from inside an epoch needs as many processes as wrote
    it. None loads: Unloadable for the folder, listing them, and nothing changed in it."""
    skipped = []
    for path in checkpoints.candidates(directory):
        try:
            ckpt = checkpoints.loaded(path, STATE_KEYS)
            if ckpt.get("step") and len(ckpt["ranks"]) != world_size:
                raise checkpoints.Unloadable(path, f"inside an epoch, by {len(ckpt['ranks'])} processes,"
                                             f" not {world_size}")
        except checkpoints.Unloadable as err:
            skipped.append(err)
            continue
        checkpoints.remove_temporaries(directory)  # the run goes on, and will write here
        return ckpt, skipped
    raise checkpoints.Unloadable(directory, checkpoints.listing(skipped) or "no epoch file")


def best_checkpoint(directory, epoch, step=0):
    """The best evaluation's state for the test: (path, checkpoint) from epoch_best.pth, else from
    its own file, each only if it holds that evaluation, or None; and the files skipped."""
    best, own = directory / BEST, directory / checkpoints.name(epoch, step)
    skipped = []
    for path in [best] + ([own] if own.resolve() != best.resolve() else []):
        try:
            ckpt = checkpoints.loaded(path, STATE_KEYS)
        except checkpoints.Unloadable as err:
            skipped.append(err)
            continue
        if (ckpt["epoch"], ckpt.get("step", 0)) == (epoch, step):
            return (path, ckpt), skipped
        skipped.append(checkpoints.Unloadable(path, f"holds {checkpoints.name(ckpt['epoch'], ckpt.get('step', 0))},"
                                                    f" not the best {checkpoints.name(epoch, step)}"))
    return None, skipped


def unwrap(obj):
    """The model itself, under DistributedDataParallel and torch.compile or not: its state_dict
    loads into the plain model. Anything else as it is."""
    obj = getattr(obj, "module", obj) if isinstance(obj, torch.nn.Module) else obj
    return getattr(obj, "_orig_mod", obj)
