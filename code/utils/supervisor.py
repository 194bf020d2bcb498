"""supervisor: a run's processes as its launcher (`run`, `con`, `rerun`) sees them: main.py started
on the run's folder and waited for, and the end its processes could not record (stopped before
Python could say so, killed outright, a crashed DDP rank); the guard from a new record to its
processes; the run's name told to the sweep that started it."""
import os
import shutil
import sys
from contextlib import contextmanager

from utils import atomic, checkpoints, notify, process


def execute(checkout, run, resume=False, nproc=None, args=None, threads=None):
    """Start the checkout's main.py on the run's folder (see utils/process.py), wait, set the
    status its processes could not, and tell the end to config `notify` (utils/notify.py): here,
    where every end is seen once, whoever recorded it."""
    try:
        return supervise(checkout, run, resume, nproc, args, threads)
    finally:
        if run:
            notify.run_ended(run, checkout)


def supervise(checkout, run, resume, nproc, args, threads):
    """main.py started and waited for; the status its processes could not record: stopped before
    Python could say so, killed outright (SIGKILL), or a crashed DDP rank."""
    nodes = {"nnodes": args.nnodes, "node_rank": args.node_rank, "master": args.master} if args else {}
    nproc = process.processes(nproc)
    cmd = process.command(checkout, run and run.dir, resume, nproc, **nodes)
    rc, stopped = process.train(cmd, threads, run and run.lock())
    if stopped and rc != 0:
        if run:
            run.conclude("interrupted", ("running",))
        return 128 + stopped
    ddp = nproc > 1 or nodes.get("nnodes", 1) > 1
    if run and rc == 130:  # stopped, not through us: main.py records it, unless it was still starting
        run.conclude("interrupted", ("running",))
    elif run and process.killed_by(rc):
        killed(run, process.killed_by(rc), ddp)
    elif run and rc not in (0, 2) and ddp:  # a rank crashed (2: a mistake, said by rank 0)
        run.conclude("failed", ("running", "interrupted"))
    return rc


def killed(run, name, ddp):
    """The run's process (a rank) killed outright, by SIGKILL say, while we live: recorded, and said
    in one line. Under DDP the other ranks were stopped by torch.distributed.run: their `interrupted`
    or `failed` is a consequence."""
    if not run.conclude("killed", ("running", "interrupted", "failed") if ddp else ("running",), signal=name):
        return  # it had recorded its end (finished, say) before it died
    why = " (out of memory?)" if name == "SIGKILL" else ""
    then = (f"`con {run}` goes on from its last checkpoint" if checkpoints.files(run.checkpoints)
            else f"it had no checkpoint yet: `rerun {run}` starts it again")
    print(f"runtag: {run} was killed by {name}{why} — {then}", file=sys.stderr, flush=True)


@contextmanager
def created(run):
    """From a new run's record to its processes: a Ctrl-C in between (a slow worktree, say)
    still ends the record `interrupted` rather than `running` with nobody behind it."""
    try:
        report_name(run)
        yield
    except KeyboardInterrupt:
        run.conclude("interrupted", ("running",))
        raise
    except Exception:  # a full disk, a worktree that cannot be made: the run never started
        if (run.read() or {}).get("pid") == os.getpid():  # main.py writes its own pid as it starts
            shutil.rmtree(run.dir, ignore_errors=True)
        raise


def report_name(run):
    """Tell a sweep the name of the run it started: on the pipe it passes (utils/sweep/job.py),
    or in the file a Slurm task names (utils/submit.py)."""
    fd = os.environ.pop("RUNTAG_NAME_FD", None)  # popped: main.py has no such descriptor
    if fd:
        notify.BY_SWEEP.append(True)
        try:
            os.write(int(fd), f"{run}\n".encode())
            os.close(int(fd))
        except (OSError, ValueError):
            pass  # the sweep is gone, killed: its SIGTERM (parent-death) ends this run `interrupted`
    target = os.environ.get("RUNTAG_NAME_FILE")
    if target:
        atomic.write_text(target, f"{run}\n")
