"""Everything training needs to continue exactly, and when it goes to disk (utils/checkpoints.py
names and writes the files).

When: at an epoch's end every `checkpoint_every` epochs, and inside an epoch every
`checkpoint_steps` optimizer steps, neither more often than every `checkpoint_interval` seconds;
a new best epoch, the last epoch, and a stop (Ctrl-C, SIGTERM: at the next step's end) always.

Memory: a state of at most `checkpoint_copy_mb` is copied to host memory (pinned on CUDA) and
written on the Recorder's writer thread while training goes on; a new best epoch's copy is held
there until the next write. A larger state is never copied: it is written from the training
state itself while training waits, and a new best epoch is written when it happens.
"""
import time
from dataclasses import dataclass
from pathlib import Path

from utils import checkpoints, distributed, signals
from utils.checkpoints import Unloadable, listing  # noqa: F401 -- main.py's names for them
from utils.runs import BEST, LAST
from utils.snapshot import rng_states, seed_everything, set_rng_states, tensor_bytes, to_host  # noqa: F401

STATE_KEYS = {"model", "optimizer", "scheduler", "epoch", "best", "best_epoch", "stale", "rng"}  # what a resume needs


@dataclass
class Policy:
    """When and how checkpoints are written: config.py's checkpoint_* values."""
    directory: Path
    keep: int = 2            # files kept besides those last and best name; 0 keeps all
    every: int = 1           # epochs between epoch checkpoints
    interval: float = 0.0    # seconds at least between checkpoints (a best, the last and a stop aside)
    steps: int = 0           # optimizer steps between step checkpoints; 0: none inside an epoch
    copy_mb: float = 256.0   # states up to this size are copied and written in the background
    writer: object = None    # runs writes off the training loop: anything with submit(fn, *args)

    @classmethod
    def of(cls, args, directory, writer=None):
        return cls(Path(directory), args.keep_checkpoints, args.checkpoint_every, args.checkpoint_interval,
                   args.checkpoint_steps, args.checkpoint_copy_mb, writer)


class State:
    def __init__(self, model, optimizer, scheduler, best_mode="max", policy=None, scaler=None):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.scaler = scaler    # fp16's GradScaler: its scale is part of continuing exactly
        self.best_mode = best_mode
        self.policy = policy
        self.epoch = 0          # epochs completed
        self.step = 0           # optimizer steps done in the epoch after those
        self.best = None        # best value of the deciding metric so far
        self.best_epoch = 0
        self.stale = 0          # epochs since the last new best (early stopping)
        self.loader = None      # the training DataLoader: a step checkpoint holds its position
        self.steps = 0          # optimizer steps in the running epoch
        self.sums = None        # what epoch.train has summed so far in this epoch
        self.resumed = None     # this rank's position inside an epoch, from a step checkpoint
        self.held_best = None   # a host copy of the best epoch until it is written (small states)
        self.unwritten = False  # the newest epoch is not on disk yet
        self.copies = None      # whether this state is small enough to copy (decided once)
        self.writing = None     # the background write in flight
        self.agreement = distributed.Agreement()
        self.written_at = time.monotonic()

    def update_best(self, value):
        """Record this epoch's deciding metric; True when it is a new best."""
        better = (self.best is None or (value > self.best if self.best_mode == "max" else value < self.best))
        if better:
            self.best, self.best_epoch, self.stale = value, self.epoch, 0
        else:
            self.stale += 1
        return better

    # --- the training loop's calls: an epoch starts, a step ends, an epoch ends, training ends

    def start_epoch(self, loader, grad_accum=1):
        """Before epoch.train: a run continued from a step checkpoint goes on from its step."""
        self.loader = loader
        self.steps = -(-len(loader) // grad_accum)  # optimizer steps in this epoch
        if self.resumed:
            loader.load_state_dict(self.resumed["loader"])

    def epoch_sums(self, zeros):
        """The tensor epoch.train sums into: `zeros`, or what a continued epoch had summed."""
        if self.resumed:
            zeros.copy_(self.resumed["sums"])
            self.resumed = None
        self.sums = zeros
        return zeros

    def step_done(self):
        """After each optimizer step: a step checkpoint when due; a stop asked for ends the run
        here, after one. Under DDP the ranks agree on both, one step late, without waiting."""
        self.step += 1
        last = self.step >= self.steps  # the epoch's end decides
        every = self.policy.steps and self.step % self.policy.steps == 0
        if distributed.active():  # decided together, on the votes of the step before
            interval_ok, stop = self.agreement.read(default=[False, False])
            self.agreement.post([self.since_write() >= self.policy.interval, signals.pending()])
            due = every and interval_ok
        else:
            stop = signals.pending()
            due = every and self.since_write() >= self.policy.interval
        if (due or stop) and not last:
            self.save()
        if stop and not last:
            signals.join()
            signals.stop()

    def epoch_done(self, best):
        """At an epoch's end (self.epoch is it): its checkpoint when due or when stopping, the best
        one always (held in memory while the state is small enough)."""
        self.step, self.sums, self.resumed = 0, None, None
        late = self.agreement.read(default=[False, False])[1]
        due = self.epoch % self.policy.every == 0 and self.since_write() >= self.policy.interval
        due, stop = distributed.agree([due, signals.pending() or late])
        if self.small() and not (due or stop):
            if best:
                self.hold()  # a copy of the best epoch: it cannot be taken later
            self.unwritten = True
        elif due or stop or best:
            self.save(best=best)
        else:
            self.unwritten = True
        if stop:
            signals.join()  # raised when the epoch's deferred block ends

    def finish(self):
        """Training ended: the newest epoch goes to disk if it is not there yet (when it is the
        best, its held copy is that epoch)."""
        if not self.unwritten:
            return
        if self.small() and self.best_epoch == self.epoch:  # every rank knows both: no gather
            self.unwritten = False
            if distributed.is_main():
                self.write([], None)
        else:
            self.save()

    def flush(self):
        """Whichever way training ended (a crash too): the held best epoch to disk. The training
        state itself is not written: a crash may have left it half a step on."""
        if self.held_best and distributed.is_main():
            self.write([], None)

    # --- snapshots and writes

    def small(self):
        if self.copies is None:
            size = tensor_bytes([unwrap(self.model).state_dict(), self.optimizer.state_dict()])
            self.copies = size <= self.policy.copy_mb * 2**20
        return self.copies

    def hold(self):
        """A host copy of this best epoch until the next write (every rank gathers; rank 0 keeps it)."""
        self.held_best = self.snapshot(copy=True)

    def save(self, best=False):
        """A checkpoint of where training is now, written by rank 0 (with the held best before it).
        Small states are copied and written in the background; large ones from the state itself."""
        snap = self.snapshot(copy=self.small())
        self.written_at = time.monotonic()
        self.unwritten = False
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

    def snapshot(self, copy):
        """Everything needed to go on from here, on rank 0 (None elsewhere): the live tensors,
        or with `copy` a host copy of them that training may run ahead of."""
        mid = self.step > 0
        parts = distributed.gather({"rng": rng_states(),
                                    "loader": self.loader.state_dict() if mid else None,
                                    "sums": self.sums.detach().cpu().clone() if mid else None})
        if parts is None:
            return None
        tree = {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else {},
            "epoch": self.epoch, "step": self.step, "best": self.best, "best_epoch": self.best_epoch,
            "stale": self.stale, "rng": [p["rng"] for p in parts],
        }
        if mid:
            tree.update(loader=[p["loader"] for p in parts], sums=[p["sums"] for p in parts])
        return to_host(tree) if copy else tree

    def since_write(self):
        return time.monotonic() - self.written_at

    # --- loading

    def load_state_dict(self, ckpt):
        unwrap(self.model).load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.best = ckpt["epoch"], ckpt["best"]
        self.best_epoch, self.stale = ckpt["best_epoch"], ckpt["stale"]
        self.step = ckpt.get("step", 0)  # checkpoints from before step checkpoints: an epoch's end
        rank = distributed.world()[0]
        set_rng_states(ckpt["rng"][rank % len(ckpt["rng"])])  # one per process of the saving run
        if self.step:  # resume_point() took it only if it has one per process of this run
            self.resumed = {"loader": ckpt["loader"][rank], "sums": ckpt["sums"][rank]}

    def load(self, path):
        self.load_state_dict(checkpoints.load(path))


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
            if ckpt.get("step") and len(ckpt["loader"]) != world_size:
                raise Unloadable(path, f"inside an epoch, by {len(ckpt['loader'])} processes, not {world_size}")
        except Unloadable as err:
            skipped.append(err)
            continue
        checkpoints.remove_temporaries(directory)  # the run goes on, and will write here
        return ckpt, skipped
    raise Unloadable(directory, listing(skipped) or "no epoch file")


def best_checkpoint(directory, epoch):
    """The best epoch's weights for the test: (path, checkpoint) from epoch_best.pth, else from
    epoch_<epoch>.pth, each only if it holds the end of that epoch, or None; and the files skipped."""
    best, own = directory / BEST, directory / checkpoints.name(epoch)
    skipped = []
    for path in [best] + ([own] if own.resolve() != best.resolve() else []):
        try:
            ckpt = checkpoints.loaded(path, {"model", "epoch"})
        except Unloadable as err:
            skipped.append(err)
            continue
        if ckpt["epoch"] == epoch and not ckpt.get("step"):
            return (path, ckpt), skipped
        skipped.append(Unloadable(path, f"holds epoch {ckpt['epoch']}, not the best {epoch}"))
    return None, skipped


def unwrap(model):
    """The model itself, under DistributedDataParallel and torch.compile or not: its state_dict
    loads into the plain model."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
