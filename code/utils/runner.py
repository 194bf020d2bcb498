"""A run's life around your loop: code/main.py ends with `sys.exit(runner.main(train))`.

`run`, `con` and `rerun` start main.py as `python code/main.py --run-dir __result__/<tag>/<id>`
(under torch.distributed.run for several processes); alone, `python code/main.py [key=value ...]`
trains into a throw-away __result__/_debug/<id>. main() reads the run's config and record,
loads the checkpoint a continued run goes on from, starts the Recorder, calls `train(run)`
with a utils.session.Session, and records how it ended: finished (with the test metrics
train returned), interrupted (Ctrl-C, SIGTERM), failed (the traceback in the log; a broken
loop protocol or a full disk in one line); then DDP's teardown.

Importing this module installs the signal handlers: main.py imports it first, so that a Ctrl-C
while torch loads is noted, never lost.
"""
import argparse
import os
import subprocess
from pathlib import Path

from utils import signals

signals.install()

from utils import distributed, log, overrides, runs, settings, snapshot  # noqa: E402 -- after the handlers: they may import torch
from utils.errors import UserError, report  # noqa: E402


def main(train, argv=None):
    """Run `train(run)` as this run; the process's exit status."""
    cli = parse(argv)
    distributed.init()  # with one process: nothing
    rank, _, world_size = distributed.world()
    try:
        run, record = distributed.from_rank0(lambda: prepare(cli))
        args = settings.process(overrides.apply(overrides.load_config(), record["overrides"]))
        args.device = distributed.device(args)
        resume = cli.resume and resume_from(run)
    except UserError as err:
        return report(err) if rank == 0 else 2

    from utils.recorder import Recorder
    from utils.session import Session
    purge = resume[0].get("steps", 0) + 1 if resume else None  # its points after the checkpoint are logged again
    rec = Recorder(run, args, cli.resume, world_size, distributed.nnodes(), active=rank == 0, purge_step=purge)
    status = 1
    try:
        status = run_to_end(train, Session(args, record, rec, resume), rec)
        return status
    finally:  # whichever way the run ended; together only when every rank finished
        signals.disarm()
        distributed.teardown(together=status == 0)


def run_to_end(train, session, rec):
    """Train, and record how it ended; the exit status."""
    from utils.session import LoopError
    try:
        signals.arm()  # a Ctrl-C noted while starting up is raised here
        snapshot.seed_everything(session.seed + session.rank)  # own dropout per process; DDP copies rank 0's weights
        metrics = train(session)
        if session.checkpointer is None:
            raise LoopError("train(run) returned without run.track(...) — track the model, optimizer and data")
        session.end()  # a loop that never called restore_best(): its last state still goes to disk
    except signals.Interrupted:
        flush(session)
        return interrupted(session, rec)
    except LoopError as err:
        flush(session)
        rec.say(f"runtag: {err}")
        rec.finish("failed", error=str(err))
        return 1
    except BaseException:
        try:  # from here a stop is only noted: raised now, it would replace the error
            signals.hold()
        except signals.Interrupted:
            pass
        if stopped_peer(session):  # a peer stopped first and broke this rank's collective
            flush(session)
            return interrupted(session, rec, traceback=True)
        flush(session)
        rec.fail()
        return 1
    rec.finish("finished", {f"test/{k}": float(v) for k, v in (metrics or {}).items()})
    trim(session, rec)
    return 0


def trim(session, rec):
    """Config keep_checkpoints_done = N: a finished run keeps best, last and N more checkpoint
    files, as `gc` would leave it, its record's `gc` saying what went (every write is done)."""
    keep = getattr(session.args, "keep_checkpoints_done", None)
    if keep is None or not rec.active:
        return
    from utils import checkpoints
    plan = checkpoints.removable(rec.run.checkpoints, others=keep)
    rec.run.write(checkpoints.noted(rec.record, plan, runs.now()))
    for path in plan:
        path.unlink(missing_ok=True)


def stopped_peer(session):
    """Under DDP, whether this rank's error came from a stop: the launcher stops every rank at
    once, so one whose peer left first has its own stop already, or within a moment. Rank 0,
    which records the status, asks for it at once: after a peer's crash the launcher stops
    the others too, but only once the crashed process has exited (a tenth of a second and more)."""
    return session.world_size > 1 and signals.noted_soon(0.05 if session.rank == 0 else 2.0)


def interrupted(session, rec, traceback=False):
    """Ended by a stop; with `traceback`, the broken collective's goes to the log only."""
    if traceback:
        log.write_traceback(rec.log, f"[rank {session.rank}] ", echo=False)
    print(f"interrupted by {signals.received[0]}")
    rec.finish("interrupted")
    return 130


def flush(session):
    """Stopped or crashed: a best evaluation held in memory goes to disk."""
    if session.checkpointer is not None:
        try:
            session.checkpointer.flush()
        except Exception:  # noqa: BLE001 -- the run's end is recorded whatever the disk says
            pass


def resume_from(run):
    """The newest checkpoint of the run that loads, and the newer ones skipped. Read before the
    run starts, so that a run with none is refused in one line and keeps its status."""
    from utils.checkpoints import Unloadable, resume_point
    try:
        return resume_point(run.checkpoints, distributed.world()[2])
    except Unloadable as err:
        raise UserError(f"no checkpoint of {run} loads: {err.why}", f"`rerun {run}` to start it again") from None


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
    settings.check(overrides.apply(config, changes))
    return runs.create("_debug", git_head(), "python code/main.py " + " ".join(cli.overrides),
                       changes, runs.fresh_seed(), fixed=False)


def git_head():
    out = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=Path(__file__).parent,
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def parse(argv):
    p = argparse.ArgumentParser(description="One run of code/main.py's train(run).")
    p.add_argument("--run-dir", help="the run folder, made by `run`/`con`/`rerun`")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint that loads")
    p.add_argument("overrides", nargs="*", help="key=value, alone only (a run folder has its own)")
    return p.parse_args(argv)
