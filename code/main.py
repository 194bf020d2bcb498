"""One run: build the state, loop over epochs, record statistics. Plain PyTorch: edit freely.

`run`, `con` and `rerun` start it as `python code/main.py --run-dir __result__/<tag>/<id>`
(under torch.distributed.run for several processes); alone, `python code/main.py [key=value ...]`
trains into a throw-away __result__/_debug/<id>.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from utils import signals

signals.install()  # first of all: a Ctrl-C while torch loads is noted, never lost

import torch  # noqa: E402
from torch.nn.parallel import DistributedDataParallel

import args_process  # noqa: E402
import dataloader  # noqa: E402
import epoch  # noqa: E402
import figures  # noqa: E402
import model as models  # noqa: E402
from state import (Policy, State, Unloadable, best_checkpoint, listing, resume_point, seed_everything,  # noqa: E402
                   unwrap)
from utils import checkpoints, distributed, overrides, runs  # noqa: E402
from utils.errors import UserError, report  # noqa: E402
from utils.recorder import Recorder  # noqa: E402


def build_optimizer(net, args):
    if args.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    cls = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    return cls(net.parameters(), args.lr, weight_decay=args.weight_decay)


def build_scheduler(optimizer, args):
    if args.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    if args.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, args.lr_step, args.lr_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def train(args, rec, record, resume):
    rank, _, world_size = distributed.world()
    seed = record["seed"]
    seed_everything(seed + rank)  # own dropout per process; DDP copies rank 0's initial weights
    train_loader, val_loader, test_loader = dataloader.build(args, seed, rank, world_size)
    net = models.build(args, dataloader.dims(train_loader, args.task)).to(args.device)
    if record.get("init_from"):  # fine-tuning: start from another run's best weights
        net.load_state_dict(checkpoints.load(runs.Run.parse(record["init_from"]).checkpoints / runs.BEST)["model"])
    if args.compile:
        net = torch.compile(net)  # state.unwrap() gives checkpoints the plain model's state_dict
    if world_size > 1:
        net = DistributedDataParallel(net, device_ids=[args.device] if args.cuda else None)
    optimizer = build_optimizer(net, args)
    scheduler = build_scheduler(optimizer, args)
    scaler = torch.amp.GradScaler(args.device.split(":")[0], enabled=args.precision == "fp16")
    state = State(net, optimizer, scheduler, args.best_mode, Policy.of(args, rec.checkpoints, writer=rec), scaler)
    if resume:  # (checkpoint, skipped): see resume_from()
        state.load_state_dict(resume[0])
        if resume[1]:
            rec.warn(f"skipped {listing(resume[1])}; continuing {where(state)}")
        print(f"continuing {where(state)}")

    try:
        for ep in range(state.epoch + 1, args.epochs + 1):
            with signals.deferred():  # a Ctrl-C stops the run at a step's end, after a checkpoint
                start = time.perf_counter()
                dataloader.reseed(train_loader, seed, ep, rank)
                state.start_epoch(train_loader, args.grad_accum)  # a continued run goes on from its step
                train_metrics = epoch.train(net, train_loader, optimizer, scaler, state, args, f"epoch {ep} train")
                val_metrics = epoch.evaluate(net, val_loader, args, f"epoch {ep} val")
                lr = scheduler.get_last_lr()[0]
                scheduler.step()
                seconds = time.perf_counter() - start
                state.epoch = ep
                metrics = {**prefixed("train", train_metrics), **prefixed("val", val_metrics)}
                best = state.update_best(metrics[args.best_metric])
                rec.epoch(ep, metrics, state.best_epoch, lr, seconds, len(train_loader.dataset))
                if args.figure_every and ep % args.figure_every == 0 and rec.active:
                    figures.log(rec, ep, *epoch.predict(net, val_loader, args), args.task)
                state.epoch_done(best)  # its checkpoint when due
                print(f"epoch {ep}/{args.epochs}  {shown(metrics)}  {seconds:.2f}s{'  *best' if best else ''}")
            if args.patience and state.stale >= args.patience:
                print(f"early stop: no better {args.best_metric} for {args.patience} epochs")
                break
        state.finish()  # the last epoch on disk
    finally:  # stopped or crashed too: a best epoch held in memory goes to disk
        state.flush()

    rec.drain()  # the best checkpoint is on disk before any process reads it back
    distributed.barrier()
    optimizer.zero_grad(set_to_none=True)  # training is over: the gradients' memory goes back before the test
    load_best(net, rec, state)
    test_metrics = prefixed("test", epoch.evaluate(net, test_loader, args, "test"))
    print(f"test (best epoch {state.best_epoch}): {shown(test_metrics)}")
    return test_metrics


def prefixed(split, metrics):
    return {f"{split}/{name}": value for name, value in metrics.items()}


def shown(metrics):
    """`train/loss 0.1234  val/acc 0.9876`: the epoch's line."""
    return "  ".join(f"{name} {value:.4f}" for name, value in metrics.items())


def where(state):
    return f"after epoch {state.epoch}" + (f", at step {state.step} of epoch {state.epoch + 1}" if state.step else "")


def resume_from(run):
    """The newest checkpoint of the run that loads, and the newer ones skipped. Read before the
    run starts, so that a run with none is refused in one line and keeps its status."""
    try:
        return resume_point(run.checkpoints, distributed.world()[2])
    except Unloadable as err:
        raise UserError(f"no checkpoint of {run} loads: {err.why}", f"`rerun {run}` to start it again") from None


def load_best(net, rec, state):
    """The best epoch's weights for the test. Should no file of it load, the run still ends: it
    tests the last weights, and says so."""
    found, skipped = best_checkpoint(rec.checkpoints, state.best_epoch)
    if found:
        unwrap(net).load_state_dict(found[1]["model"])
    if skipped:
        tested = (f"the best epoch {state.best_epoch} from checkpoint/{found[0].name}" if found else
                  f"the last weights (epoch {state.epoch}), not the best (epoch {state.best_epoch})")
        rec.warn(f"skipped {listing(skipped)}; testing {tested}")


def prepare(cli):
    """The run and its record: the folder given, or a new _debug run. Rank 0 only."""
    config = overrides.load_config()
    if cli.run_dir:
        run = runs.Run.at(cli.run_dir)
        record = run.read()
        if record is None:
            raise UserError(f"no readable statistic.json in {cli.run_dir}", "start runs with `run <tag>`")
        if not os.environ.get("RUNTAG_LOCKED"):  # started by hand, not by run/con/rerun (which lock)
            run.lock()
        return run, record
    changes = overrides.parse(cli.overrides, config)
    args_process.check(overrides.apply(config, changes))
    return runs.create("_debug", git_head(), "python code/main.py " + " ".join(cli.overrides),
                       changes, runs.fresh_seed(), fixed=False)


def git_head():
    out = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=Path(__file__).parent,
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", help="the run folder, made by `run`/`con`/`rerun`")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint that loads")
    p.add_argument("overrides", nargs="*", help="key=value, alone only (a run folder has its own)")
    return p.parse_args(argv)


def main(argv=None):
    cli = parse(argv)
    distributed.init()  # with one process: nothing
    rank, _, world_size = distributed.world()
    try:
        run, record = distributed.from_rank0(lambda: prepare(cli))
        args = args_process.process(overrides.apply(overrides.load_config(), record["overrides"]))
        args.device = distributed.device(args)
        resume = cli.resume and resume_from(run)
    except UserError as err:
        return report(err) if rank == 0 else 2

    rec = Recorder(run, args, cli.resume, world_size, distributed.nnodes(), active=rank == 0)
    status = 1
    try:
        status = run_to_end(rec, args, record, resume)
        return status
    finally:  # whichever way the run ended; together only when every rank finished
        signals.disarm()
        distributed.teardown(together=status == 0)


def run_to_end(rec, args, record, resume):
    """Train, and record how it ended; the exit status."""
    try:
        signals.arm()  # a Ctrl-C noted while starting up is raised here
        metrics = train(args, rec, record, resume)
    except signals.Interrupted as why:
        print(f"interrupted by {why}")
        rec.finish("interrupted")
        return 130
    except BaseException:
        rec.fail()
        return 1
    rec.finish("finished", metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
