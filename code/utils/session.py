"""The seam between your training loop and the run: what `train(run)` in code/main.py is given.

A loop makes three calls; everything else (the record, TensorBoard, checkpoints, resume, a
Ctrl-C, DDP's agreement, the end) is the tooling's:

    run.track(model=net, optimizer=opt, ...)   once, with everything that has state; a continued
                                               run's state is loaded into them here
    run.step(loss=loss)                        after each optimizer step (and the scheduler's),
                                               with that step's training metrics (tensors stay on
                                               the device); returns True when an evaluation is
                                               due now: every `eval_every` steps, at `max_steps`,
                                               or (eval_every = 0) at the epoch's last step
    run.evaluated(val={"loss": ..., "acc": ...})
                                               with each evaluation's metrics: records them,
                                               decides the best and writes the checkpoint;
                                               returns True when training should stop (early
                                               stopping, or max_steps reached)

and reads its clock from `for epoch in run.epochs():` (the epochs left, from where a continued
run goes on; with max_steps, as many as the steps take). `run.restore_best()` ends training and
loads the best evaluation's weights into the tracked models; whatever `train(run)` returns is
the test's metrics. A call forgotten or out of order fails the run with one line saying which
(LoopError), never a silently wrong record.

Tracked objects: models, optimizers, schedulers and GradScalers are saved once (rank 0's); any
other object with state_dict()/load_state_dict() (a data loader, a dataset, an EMA, your own)
once per process. Training metrics are the mean of `run.step()`'s values since the previous
evaluation, over every process; every `log_every` steps TensorBoard gets rank 0's since the last.
"""
import time

from utils import cadence, checkpointing, checkpoints, distributed, positions, signals
from utils.checkpoints import listing
from utils.tally import LOG, Tally


class LoopError(Exception):
    """The loop broke the protocol above: one line, in the log and on stderr; the run fails."""


class Session:
    def __init__(self, args, record, recorder, resume=None):
        self.args, self.record, self.seed, self.recorder = args, record, record["seed"], recorder
        self.rank, _, self.world_size = distributed.world()
        self.device = args.device
        # the clock's keys (utils/settings.py gives an older config.py's args 0 for them)
        self.max_steps, self.eval_every, self.log_every = (getattr(args, k, 0) for k in ("max_steps", "eval_every", "log_every"))
        self.resume = resume    # (checkpoint, skipped) of a continued run
        self.epoch = 0          # epochs completed
        self.in_epoch = 0       # optimizer steps done in the epoch after those
        self.steps = 0          # optimizer steps done in all: the x-axis of every scalar
        self.best = None        # the best value of best_metric so far, at evaluation `best_epoch`
        self.best_epoch = self.best_step = 0  # where the best is: (epochs done, steps into the next)
        self.best_steps = 0     # ... and its optimizer steps in all
        self.stale = 0          # evaluations since the last new best (early stopping)
        self.evaluations = 0
        self.tally = Tally()    # run.step()'s values, summed since the last evaluation and log
        self.checkpointer = None
        self.over = False       # end() was called: training is over
        self.due = False        # run.step() said an evaluation is due and none came yet
        self.running = self.per_epoch = None
        self.group = {"lr": 0.0}  # the first optimizer's first parameter group
        self.lr = self.next_lr = 0.0
        self.started = self.logged = (time.perf_counter(), 0)  # (time, steps) of the last evaluation, log

    @property
    def sums(self):
        return self.tally.sums

    @property
    def names(self):
        return self.tally.names

    # --- the loop's calls

    def track(self, **things):
        if self.checkpointer is not None:
            raise LoopError("run.track() was called twice — name everything that has state in one call")
        if clash := sorted(set(things) & checkpointing.RESERVED):
            raise LoopError(f"run.track() got reserved names {', '.join(clash)} — name those objects otherwise")
        missing = [n for n, o in things.items() if not hasattr(o, "state_dict") or not hasattr(o, "load_state_dict")]
        if plain := [n for n in missing if positions.is_loader(things[n])]:
            raise LoopError(f"run.track(): {plain[0]} is a torch DataLoader, which cannot say where it is in an"
                            " epoch — use torchdata's StatefulDataLoader (a drop-in) for the training data")
        if missing:
            raise LoopError(f"run.track(): {', '.join(missing)} has no state_dict()/load_state_dict()"
                            " — track only what has state")
        self.loaders = [o for o in things.values() if positions.is_loader(o)]
        for name, why in [(n, positions.inexact(o)) for n, o in things.items() if positions.is_loader(o)]:
            if why:
                self.recorder.warn(f"{name}'s sampler {why}: a run continued inside an epoch may see other"
                                   " batches — draw an epoch's indices when it starts (text.Draws)")
        self.optimizers = [o for o in things.values() if isinstance(o, checkpointing.torch.optim.Optimizer)]
        policy = checkpointing.Policy.of(self.args, self.recorder.checkpoints, writer=self.recorder)
        self.checkpointer = checkpointing.Checkpointer(things, self, policy)
        self.cadence = cadence.Cadence(self.checkpointer)
        if self.resume:
            self.load(*self.resume)
        self.group = self.optimizers[0].param_groups[0] if self.optimizers else self.group  # after load: it replaces them
        self.next_lr = self.group["lr"]
        self.started = self.logged = (time.perf_counter(), self.steps)
        signals.hold()  # from now on a Ctrl-C stops the run at a step's end, after a checkpoint

    def epochs(self):
        """The epochs left to train, numbered from 1: up to `epochs`, or while steps are left."""
        self.require("run.epochs()")
        epoch = self.epoch + 1
        while not self.finished() and (self.max_steps or epoch <= self.args.epochs):
            self.running, self.per_epoch = epoch, self.epoch_steps()
            if not self.eval_every:
                self.started = (time.perf_counter(), self.steps)
            yield epoch
            if self.epoch != epoch:
                if not self.eval_every:
                    raise LoopError(f"epoch {epoch} ended without run.evaluated(...) — call it once per epoch,"
                                    " with the validation metrics")
                self.epoch, self.in_epoch = epoch, 0  # between evaluations: the epoch ends with its data
            epoch += 1

    def step(self, **metrics):
        """After each optimizer step: its metrics summed; a log and a step checkpoint when due; a
        stop asked for ends the run here, after one. Whether an evaluation is due now."""
        if self.checkpointer is None:
            self.require("run.step()")
        if self.due:
            raise LoopError(f"run.step() said at step {self.steps} that an evaluation was due — call"
                            " run.evaluated(...) when it returns True")
        self.in_epoch += 1
        self.steps += 1
        self.lr, self.next_lr = self.next_lr, self.group["lr"]  # this step's, before the scheduler's step
        if metrics and not self.tally.add(metrics):
            raise LoopError(f"run.step() got {', '.join(metrics)}, before {', '.join(self.names)}"
                            " — pass the same metrics at every step")
        if self.log_every and self.steps % self.log_every == 0:
            self.log_step()
        last = self.per_epoch is not None and self.in_epoch >= self.per_epoch
        every = self.eval_every
        self.due = bool(every and self.steps % every == 0 or self.finished() or not every and last)
        self.cadence.step(self.in_epoch, last or self.due)  # at an evaluation it decides
        return self.due

    def evaluated(self, **splits):
        """An evaluation's metrics, by split: recorded, the best updated, checkpointed."""
        self.require("run.evaluated()")
        self.due = False
        metrics = self.tally.means()
        for split, values in splits.items():
            metrics.update({f"{split}/{k}": float(v) for k, v in values.items()})
        if self.in_epoch >= self.per_epoch if self.per_epoch is not None else not self.eval_every:
            self.epoch, self.in_epoch = self.running or self.epoch + 1, 0  # the epoch's end
        self.evaluations += 1
        best = self.update_best(metrics)
        at = {"step": self.steps, "epoch": self.epoch_now(), "epochs": self.epochs_done(), "best": best,
              "evaluations": self.evaluations, "logged": self.logged[1] == self.steps}
        seconds, samples = self.since(self.started)
        self.started = (time.perf_counter(), self.steps)
        self.recorder.evaluation(at, metrics, self.lr, seconds, samples, train=not self.log_every)
        print(f"{self.progress()}  {shown(metrics)}  {seconds:.2f}s{'  *best' if best else ''}")
        self.cadence.evaluation(self.evaluations, best)
        if self.args.patience and self.stale >= self.args.patience:
            print(f"early stop: no better {self.args.best_metric} for {self.args.patience} evaluations")
            return True
        return self.finished()

    def end(self):
        """Training is over: its last state on disk, every write done, a Ctrl-C acted on at once."""
        if self.over:
            return
        self.over = True
        self.finish()
        self.recorder.drain()  # the best checkpoint is on disk before any process reads it back
        distributed.barrier()
        signals.release()
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)  # their memory goes back before the test

    def restore_best(self):
        """Training is over (end()); the best evaluation's weights in the tracked models. Its epoch
        (the one it ended, or the one it was in); run.best_steps is its step."""
        self.require("run.restore_best()")
        self.end()
        found, skipped = checkpoints.best_checkpoint(self.recorder.checkpoints, self.best_epoch, self.best_step)
        if found:
            for name, obj in self.checkpointer.shared.items():
                if isinstance(obj, checkpointing.torch.nn.Module):
                    checkpointing.unwrap(obj).load_state_dict(found[1][name])
        if skipped:
            tested = (f"the best epoch {self.best_epoch} from checkpoint/{found[0].name}" if found else
                      f"the last weights (epoch {self.epoch}), not the best (epoch {self.best_epoch})")
            self.recorder.warn(f"skipped {listing(skipped)}; testing {tested}")
        return self.best_epoch + (1 if self.best_step else 0)  # the epoch the best evaluation was in

    # --- the clock's parts

    def require(self, call):
        if self.checkpointer is None:
            raise LoopError(f"{call} before run.track(...) — track the model, optimizer and data first")

    def finished(self):
        return bool(self.max_steps) and self.steps >= self.max_steps

    def epoch_steps(self):
        """Optimizer steps in an epoch, when the one tracked loader has a length."""
        try:
            return -(-len(self.loaders[0]) // getattr(self.args, "grad_accum", 1)) if len(self.loaders) == 1 else None
        except TypeError:  # an IterableDataset without __len__
            return None

    def epoch_now(self):
        """The epoch an evaluation is in: the one it ended, or the one under way."""
        return self.epoch + (1 if self.in_epoch else 0)

    def epochs_done(self):
        """Epochs done, with the fraction of the one under way when its length is known."""
        return self.epoch + (self.in_epoch / self.per_epoch if self.per_epoch else 0)

    def progress(self):
        """`epoch 3/20`, or `step 1200/5000 (epoch 2)` under max_steps or eval_every."""
        if self.max_steps or self.eval_every:
            total = self.max_steps or "?"
            return f"step {self.steps}/{total} (epoch {self.epoch_now()})"
        return f"epoch {self.epoch}/{self.args.epochs}"

    def since(self, mark):
        """Seconds and samples since `mark` (time, steps)."""
        batch = getattr(self.args, "batch_size", 1) * getattr(self.args, "grad_accum", 1) * self.world_size
        return time.perf_counter() - mark[0], max(self.steps - mark[1], 1) * batch

    def log_step(self):
        """Every log_every steps: this process's training means since the last, to TensorBoard."""
        if not self.recorder.active:
            self.tally.restart(LOG)  # nothing read (no sync): it starts again
            return
        seconds, samples = self.since(self.logged)
        steps = max(self.steps - self.logged[1], 1)
        self.logged = (time.perf_counter(), self.steps)
        self.recorder.log_step(self.steps, self.tally.means(LOG), self.lr, self.epochs_done(), seconds, samples, steps)

    def update_best(self, metrics):
        key = self.args.best_metric
        if key not in metrics:
            raise LoopError(f"best_metric {key} is not among the metrics evaluated ({', '.join(metrics)})"
                            " — set best_metric in config.py to one of them")
        value = metrics[key]
        better = self.best is None or (value > self.best if self.args.best_mode == "max" else value < self.best)
        if better:
            self.best, self.best_epoch, self.best_step, self.best_steps, self.stale = (
                value, self.epoch, self.in_epoch, self.steps, 0)
        else:
            self.stale += 1
        return better

    def finish(self):
        self.cadence.finish((self.best_epoch, self.best_step) == (self.epoch, self.in_epoch))

    def load(self, ckpt, skipped):
        try:
            sums, counters = self.checkpointer.load(ckpt)
        except checkpointing.Mismatch as err:
            raise LoopError(f"{err} — run.track() must name what the run that wrote it tracked") from None
        names = counters.pop("names", ())
        vars(self).update(counters)
        if per := self.epoch_steps():  # a file from before these counters: the epochs' steps
            self.steps = counters.get("steps", self.epoch * per + self.in_epoch)
            self.best_steps = counters.get("best_steps", self.best_epoch * per + self.best_step)
        self.tally.load(names, sums, self.device)
        where = f"after epoch {self.epoch}" + (f", at step {self.in_epoch} of epoch {self.epoch + 1}" if self.in_epoch else "")
        if skipped:
            self.recorder.warn(f"skipped {listing(skipped)}; continuing {where}")
        print(f"continuing {where}" + (f" (step {self.steps})" if self.max_steps or self.eval_every else ""))


def shown(metrics):
    """`train/loss 0.1234  val/acc 0.9876`: the evaluation's line."""
    return "  ".join(f"{name} {value:.4f}" for name, value in metrics.items())
