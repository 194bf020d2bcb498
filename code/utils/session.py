"""The seam between your training loop and the run: what `train(run)` in code/main.py is given.

A loop makes three calls; everything else (the record, TensorBoard, checkpoints, resume, a
Ctrl-C, DDP's agreement, the end) is the tooling's:

    run.track(model=net, optimizer=opt, ...)   once, with everything that has state; a continued
                                               run's state is loaded into them here
    run.step(loss=loss)                        after each optimizer step, with that step's training
                                               metrics (tensors stay on the device); returns
                                               whether an evaluation is due now (never, while
                                               evaluations come at epochs' ends)
    run.evaluated(val={"loss": ..., "acc": ...})
                                               with each evaluation's metrics, after everything the
                                               epoch changed (the scheduler's step too): records
                                               them and writes the checkpoint; returns True when
                                               training should stop (early stopping)

and reads its clock from `for epoch in run.epochs():` (the epochs left, from where a continued
run goes on). `run.restore_best()` ends training and loads the best evaluation's weights into
the tracked models; whatever `train(run)` returns is the test's metrics. A call forgotten or out
of order fails the run with one line saying which (LoopError), never a silently wrong record.

Tracked objects: models, optimizers, schedulers and GradScalers are saved once (rank 0's); any
other object with state_dict()/load_state_dict() (a data loader, a dataset, an EMA, your own)
once per process. Training metrics are the mean of `run.step()`'s values since the previous
evaluation, over every process.
"""
import time

from utils import cadence, checkpointing, checkpoints, distributed, signals
from utils.checkpoints import listing


class LoopError(Exception):
    """The loop broke the protocol above: one line, in the log and on stderr; the run fails."""


class Session:
    def __init__(self, args, record, recorder, resume=None):
        self.args, self.record, self.seed, self.recorder = args, record, record["seed"], recorder
        self.rank, _, self.world_size = distributed.world()
        self.device = args.device
        self.resume = resume    # (checkpoint, skipped) of a continued run
        self.epoch = 0          # epochs completed
        self.in_epoch = 0       # optimizer steps done in the epoch after those
        self.steps = 0          # optimizer steps done in all
        self.best = None        # the best value of best_metric so far, at evaluation `best_epoch`
        self.best_epoch = self.best_step = 0
        self.stale = 0          # evaluations since the last new best (early stopping)
        self.evaluations = 0
        self.sums = None        # run.step()'s values summed since the last evaluation; the last: steps
        self.names = ()
        self.checkpointer = None
        self.over = False       # end() was called: training is over
        self.running = self.per_epoch = None
        self.group = {"lr": 0.0}  # the first optimizer's first parameter group
        self.lr = 0.0

    # --- the loop's calls

    def track(self, **things):
        if self.checkpointer is not None:
            raise LoopError("run.track() was called twice — name everything that has state in one call")
        if clash := sorted(set(things) & checkpointing.RESERVED):
            raise LoopError(f"run.track() got reserved names {', '.join(clash)} — name those objects otherwise")
        missing = [n for n, o in things.items() if not hasattr(o, "state_dict") or not hasattr(o, "load_state_dict")]
        if plain := [n for n in missing if checkpointing.is_loader(things[n])]:
            raise LoopError(f"run.track(): {plain[0]} is a torch DataLoader, which cannot say where it is in an"
                            " epoch — use torchdata's StatefulDataLoader (a drop-in) for the training data")
        if missing:
            raise LoopError(f"run.track(): {', '.join(missing)} has no state_dict()/load_state_dict()"
                            " — track only what has state")
        self.loaders = [o for o in things.values() if checkpointing.is_loader(o)]
        self.optimizers = [o for o in things.values() if isinstance(o, checkpointing.torch.optim.Optimizer)]
        policy = checkpointing.Policy.of(self.args, self.recorder.checkpoints, writer=self.recorder)
        self.checkpointer = checkpointing.Checkpointer(things, self, policy)
        self.cadence = cadence.Cadence(self.checkpointer)
        if self.resume:
            self.load(*self.resume)
        self.group = self.optimizers[0].param_groups[0] if self.optimizers else self.group  # after load: it replaces them
        signals.hold()  # from now on a Ctrl-C stops the run at a step's end, after a checkpoint

    def epochs(self):
        """The epochs left to train, numbered from 1."""
        self.require("run.epochs()")
        for epoch in range(self.epoch + 1, self.args.epochs + 1):
            self.running, self.started = epoch, time.perf_counter()
            self.per_epoch = self.epoch_steps()
            yield epoch
            if self.epoch != epoch:
                raise LoopError(f"epoch {epoch} ended without run.evaluated(...) — call it once per epoch,"
                                " with the validation metrics")

    def step(self, **metrics):
        """After each optimizer step: its metrics summed; a step checkpoint when due; a stop asked
        for ends the run here, after one. Under DDP the ranks agree on both, one step late."""
        if self.checkpointer is None:
            self.require("run.step()")
        self.in_epoch += 1
        self.steps += 1
        self.lr = self.group["lr"]  # what this step trained with (a scheduler may step before evaluated())
        if metrics:
            self.add(metrics)
        self.cadence.step(self.in_epoch, self.per_epoch is not None and self.in_epoch >= self.per_epoch)
        return False

    def evaluated(self, **splits):
        """An evaluation's metrics, by split: recorded, the best updated, checkpointed."""
        self.require("run.evaluated()")
        metrics = self.train_means()
        for split, values in splits.items():
            metrics.update({f"{split}/{k}": float(v) for k, v in values.items()})
        self.epoch, self.in_epoch, self.evaluations = self.running or self.epoch + 1, 0, self.evaluations + 1
        best = self.update_best(metrics)
        seconds = time.perf_counter() - self.started if self.running else 0.0
        batch = getattr(self.args, "batch_size", 1) * getattr(self.args, "grad_accum", 1) * self.world_size
        self.recorder.epoch(self.epoch, metrics, self.best_epoch, self.lr, seconds, max(self.sums_steps, 1) * batch)
        self.sums = None
        print(f"epoch {self.epoch}/{self.args.epochs}  {shown(metrics)}  {seconds:.2f}s{'  *best' if best else ''}")
        self.cadence.evaluation(self.evaluations, best)
        stop = bool(self.args.patience and self.stale >= self.args.patience)
        if stop:
            print(f"early stop: no better {self.args.best_metric} for {self.args.patience} evaluations")
        return stop

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
        """Training is over (end()); the best evaluation's weights in the tracked models. Its epoch."""
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
        return self.best_epoch

    # --- the clock's parts

    def require(self, call):
        if self.checkpointer is None:
            raise LoopError(f"{call} before run.track(...) — track the model, optimizer and data first")

    def epoch_steps(self):
        """Optimizer steps in an epoch, when the one tracked loader has a length."""
        try:
            return -(-len(self.loaders[0]) // getattr(self.args, "grad_accum", 1)) if len(self.loaders) == 1 else None
        except TypeError:  # an IterableDataset without __len__
            return None

    def add(self, metrics):
        if self.sums is None:
            import torch
            self.names = tuple(metrics)
            value = next(iter(metrics.values()))
            device = value.device if isinstance(value, torch.Tensor) else "cpu"
            self.sums = torch.zeros(len(metrics) + 1, dtype=torch.float64, device=device)
        elif len(metrics) != len(self.names):
            raise LoopError(f"run.step() got {', '.join(metrics)}, before {', '.join(self.names)}"
                            " — pass the same metrics at every step")
        for k, value in enumerate(metrics.values()):
            self.sums[k] += value.detach() if hasattr(value, "detach") else value  # on the device: no sync
        self.sums[-1] += 1

    @property
    def sums_steps(self):
        return int(self.sums[-1]) if self.sums is not None else 0

    def train_means(self):
        """`train/<name>`: run.step()'s values averaged over the steps since the last evaluation, all ranks."""
        if self.sums is None:
            return {}
        *totals, n = distributed.all_reduce_sum(self.sums.clone()).tolist()
        return {f"train/{name}": total / n for name, total in zip(self.names, totals)}

    def update_best(self, metrics):
        key = self.args.best_metric
        if key not in metrics:
            raise LoopError(f"best_metric {key} is not among the metrics evaluated ({', '.join(metrics)})"
                            " — set best_metric in config.py to one of them")
        value = metrics[key]
        better = self.best is None or (value > self.best if self.args.best_mode == "max" else value < self.best)
        if better:
            self.best, self.best_epoch, self.best_step, self.stale = value, self.epoch, self.in_epoch, 0
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
        vars(self).update(counters)
        self.names = tuple(self.names)
        if self.in_epoch and sums is not None:
            self.sums = sums.to(self.device)
        where = f"after epoch {self.epoch}" + (f", at step {self.in_epoch} of epoch {self.epoch + 1}" if self.in_epoch else "")
        if skipped:
            self.recorder.warn(f"skipped {listing(skipped)}; continuing {where}")
        print(f"continuing {where}")


def shown(metrics):
    """`train/loss 0.1234  val/acc 0.9876`: the evaluation's line."""
    return "  ".join(f"{name} {value:.4f}" for name, value in metrics.items())

