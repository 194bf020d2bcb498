"""Additions to the record of a run that has ended: `eval`'s metrics, `note`'s lines.

A record is written by its run while it trains, and is frozen after, except for what is added
here, each with its provenance: `evals` (what produced each `eval/...` metric) and `notes`. A
run that is alive (its folder's lock is held) is refused, and the lock is held while the record
is read, changed and written back (atomically): two additions at once never lose one.
"""
import contextlib

from utils import runlock, runs, schema
from utils.errors import UserError


@contextlib.contextmanager
def amending(run):
    """The run's record to change in place; written back when the block ends without an error."""
    fd = lock(run)
    try:
        record = runs.load(run.dir / runs.RECORD, str(run), quiet=True, required=schema.REQUIRED)
        if record is None:
            why = runs.damage(run) or "is missing"
            raise UserError(f"the record of {run} {why} ({run.dir / runs.RECORD})", "fix it, or choose another run")
        alive(run, record)
        yield record
        run.write(record)
    finally:
        release(run, fd)


def alive(run, record):
    """A run that says it runs elsewhere (another host, a Slurm job) is refused too."""
    if record.get("status") in ("running", "queued") and runs.status(record) != "dead":
        where = f" on {record['host']}" if record.get("host") and record["host"] != runs.host() else ""
        raise UserError(f"{run} is {record['status']}{where}: its own process writes its record",
                        "wait for it to end")


def lock(run):
    """Hold the run folder's lock now, or refuse: a live run writes its own record."""
    if run.dir.resolve() in runlock.HELD:
        return None  # this process holds it already: not ours to let go
    return runlock.acquire(run.dir, str(run))


def release(run, fd):
    if fd is not None:
        runlock.release(run.dir)
