"""A run's bookkeeping while it trains: TensorBoard events, the log, its record (through utils/runs.py).

Disk writes (statistic.json, checkpoints) go to one background thread, in order, so the
training loop does not wait on fsync; `drain()` waits for them before anything is concluded.
"""
import os
import resource
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from utils import atomic, hardware, log, paths, runs
from utils.fullness import Reserve, no_space, quietly


class Recorder:
    """Under DDP every rank has one, but only rank 0's is `active` and writes."""

    def __init__(self, run, args, resume=False, world_size=1, nnodes=1, active=True, purge_step=None):
        self.run = run
        self.checkpoints = run.checkpoints
        self.log = run.log
        self.cuda = args.cuda
        self.active = active
        self.pending = []
        if active:
            self.start(args, resume, world_size, nnodes, purge_step)

    def start(self, args, resume, world_size, nnodes, purge_step):
        self.started = time.time()
        self.background = ThreadPoolExecutor(1, thread_name_prefix="runtag-writer")
        self.tee = log.tee_stdout(self.log)
        self.reserve = Reserve(self.run.reserve)
        self.trained = False  # set by the first epoch
        self.record = self.run.start(
            pid=os.getpid(), host=socket.gethostname(),
            epochs=args.epochs, max_steps=args.max_steps, world_size=world_size, nnodes=nnodes,
            effective_batch=args.batch_size * args.grad_accum * world_size,  # samples per optimizer step
            hparams=json_safe(vars(args)),
            gpus=os.environ.get("CUDA_VISIBLE_DEVICES"),
            versions={"python": sys.version.split()[0], "torch": torch.__version__},
            threads=torch.get_num_threads(),  # CPU results depend on it in the last bits
        )
        self.previous_s = self.record["duration_s"] if resume else 0.0
        from torch.utils.tensorboard import SummaryWriter  # a new event file beside any old one
        # purge_step: TensorBoard hides the older files' points from this step on, which a
        # continued run logs again: each step shows once
        self.writer = SummaryWriter(self.run.tensorboard, purge_step=purge_step)
        self.hardware = hardware.Sampler(torch.cuda.current_device() if self.cuda else None)

    def evaluation(self, at, metrics, lr, seconds, samples, train=True):
        """TensorBoard scalars of one evaluation at global step at["step"] (the train/ means too,
        unless log steps draw them), and statistic.json rewritten in the background."""
        if not self.active:
            return
        step = at["step"]
        pairs = [(k, v) for k, v in metrics.items() if train or not k.startswith("train/")]
        if not at["logged"]:  # a log step at this step has it
            pairs.append(("epoch", at["epochs"]))
        if train:
            pairs += [("lr", lr), ("time/samples_per_s", samples / seconds)]
        pairs += [("time/evaluation_s", seconds), ("memory/peak_mb", peak_memory_mb(self.cuda))]  # since the last evaluation
        system = self.hardware.take()
        self.scalars(step, pairs + list(system.items()))
        self.trained = True
        m = self.record["metrics"]
        m.update({f"last/{flat(k)}": v for k, v in metrics.items()})
        m.update({f"last/{flat(k)}": v for k, v in system.items()})
        if at["best"]:
            m.update({f"best/{flat(k)}": v for k, v in metrics.items()})
            m["best/epoch"], m["best/step"] = at["epoch"], step
        self.record.update(epoch=int(at["epochs"]), step=step, evaluations=at["evaluations"], duration_s=self.duration())
        self.run.write(self.record, background=self)

    def log_step(self, step, metrics, lr, epochs, seconds, samples, steps):
        """Every log_every optimizer steps: the training means since the last log, the lr, the speed."""
        self.scalars(step, [*metrics.items(), ("lr", lr), ("epoch", epochs), ("time/step_ms", 1000 * seconds / steps),
                            ("time/samples_per_s", samples / seconds)])

    def scalars(self, step, pairs):
        """TensorBoard scalars at `step`, encoded on the writer thread, in order with every other
        write there (a checkpoint flushes the events logged before it)."""
        if self.active:
            self.submit(lambda: [self.writer.add_scalar(key, value, step) for key, value in pairs])

    def flush_events(self):
        """The events logged so far to the operating system (before a checkpoint: see checkpointing)."""
        if self.active:
            self.writer.flush()

    def image(self, tag, image, epoch):
        """An image tensor (C, H, W; floats in [0, 1]) in TensorBoard, encoded as PNG on the
        writer thread. Rank 0 only."""
        if self.active:
            self.submit(self.writer.add_image, tag, image, epoch)

    def figure(self, tag, epoch, draw, *data):
        """A matplotlib figure in TensorBoard: `draw(*data)` returns it. Drawn and rendered on the
        writer thread, so the training loop does not wait for matplotlib. Rank 0 only."""
        if self.active:
            self.submit(lambda: self.writer.add_figure(tag, draw(*data), epoch, close=True))

    def submit(self, fn, *args):
        """Run fn(*args) on the writer thread, after the writes submitted before it."""
        self.check()
        future = self.background.submit(fn, *args)
        self.pending.append(future)
        return future

    def check(self):
        """Raise here, in the training loop, what failed in the background."""
        for f in [f for f in self.pending if f.done()]:
            self.pending.remove(f)
            f.result()

    def drain(self):
        for f in self.pending:
            f.result()
        self.pending = []

    def duration(self):
        return round(self.previous_s + time.time() - self.started, 3)

    def finish(self, status, metrics=None, error=None):
        """The final record, written synchronously after every pending write. A write that
        failed in the background fails a run that would otherwise have finished."""
        if not self.active:
            return
        try:
            self.drain()
        except OSError as err:
            if status == "finished":
                status, error = "failed", self.failure(err)
        finally:
            self.background.shutdown()
        self.record["metrics"].update(metrics or {})
        if status == "finished":
            self.hparams(metrics or {})
        self.hardware.stop()
        quietly(self.writer.close)  # on a full disk its last events are lost, not the record
        duration = self.duration() if self.trained else self.previous_s  # a con that failed to start adds nothing
        self.record.update(status=status, end=runs.now(), duration_s=duration)
        if error:
            self.record["error"] = error
        self.reserve.release()  # room for this last record, whatever the disk holds now
        self.run.write(self.record)
        if status == "finished":
            self.listed("finished")
        self.tee.close()  # stdout is the terminal's again

    def listed(self, name):
        """The finished run into an experiment list. A list that cannot be written (a full
        __statistic__) is one line saying how to add it later; the run stays finished, exit 0."""
        path = paths.exper_list(name)
        try:
            atomic.append_lines(path, [str(self.run)])
        except OSError as err:
            why = err.strerror.lower() if err.strerror else str(err)
            self.say(f"runtag: {self.run} finished, but {path} could not be written ({why})"
                     f" — free space (or fix the folder), then `record -l {name} {self.run}`")

    def hparams(self, metrics):
        """The run's hyperparameters and final metrics for TensorBoard's HParams dashboard."""
        from torch.utils.tensorboard.summary import hparams
        hp = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
              for k, v in self.record["hparams"].items()}
        final = {**{k: v for k, v in self.record["metrics"].items() if k.startswith("best/")}, **metrics}
        for summary in hparams(hp, final):
            self.writer.file_writer.add_summary(summary)
        for key, value in final.items():
            self.writer.add_scalar(key, value, self.record.get("step") or 0)

    def fail(self):
        """The traceback into the log (from whichever rank raised), the status `failed`. A full
        disk is one line, in the log and on stderr, after the reserve is freed to say it."""
        err = sys.exc_info()[1]
        if self.active and no_space(err):
            self.finish("failed", error=self.failure(no_space(err)))
            return
        log.write_traceback(self.log, "" if self.active else f"[rank {os.environ.get('RANK')}] ")
        self.finish("failed", error=f"{type(err).__name__}: {err}"[:500])

    def failure(self, err):
        """`no space left on device while writing <file>`, in the log and on stderr; the text."""
        self.reserve.release()
        what = f"{err.strerror.lower() if err.strerror else err} while writing {err.filename or 'a file'}"
        self.say(f"runtag: {self.run} failed: {what} — free space, then `con`")
        return what

    def warn(self, text):
        self.say(f"runtag: warning: {text}")

    def say(self, line):
        """One line into the log (which has only stdout) and on stderr (which may be gone). Rank 0 only."""
        if self.active:
            quietly(lambda: print(line, file=self.tee.file, flush=True))
            log.Echo(sys.stderr).write(line + "\n")


def flat(key):
    return key.replace("/", "_")


def json_safe(d):
    return {k: v if isinstance(v, (int, float, str, bool, type(None), list)) else str(v)
            for k, v in d.items()}


def peak_memory_mb(cuda):
    if cuda:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

