"""drive: a sweep's jobs through a pool, reported as they go: a START, DONE or FAIL line per
run and a progress bar; Ctrl-C or SIGTERM stop the sweep."""
import queue
import sys

from utils import notify, overrides, process, runs
from utils.sweep.job import POLL_S


def drive(pool, jobs, cmd, total=None, search=None):
    """Run the jobs on the pool: a line per start and end, a progress bar. Ctrl-C or SIGTERM stop
    the sweep: no new run starts, the running ones are interrupted and waited for. True if so.
    With a `search` (utils/sweep/search.py), `jobs` asks its trials as workers free up, each
    running trial is watched for its pruner, and each end is told to the study."""
    from tqdm import tqdm

    events, signalled, running = queue.Queue(), [], {}
    with process.trapped(signalled.append), \
            tqdm(total=len(jobs) if total is None else total, unit="run", desc="sweep", dynamic_ncols=True) as bar:
        pool.start(jobs, cmd, events)
        stopping = False
        while pool.alive() or not events.empty():
            if signalled and not stopping:
                stopping = True
                pool.stop()
                say(bar, "STOP  the running runs are interrupted; waiting for them to end")
            for job in list(running.values()) if search and not stopping else []:
                if search.watch(job):
                    pool.interrupt(job)
            try:
                kind, job = events.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if kind == "start":
                running[id(job)] = job
            else:
                running.pop(id(job), None)
                if search:
                    search.tell(job)
                told(job)
            say(bar, line(kind, job))
            if kind == "end":
                bar.update()
    return bool(signalled)


def told(job):
    """An interrupted run of the sweep is told here, not by its launcher (utils/notify.py): only
    now is it known whether the pruner stopped it (search.tell made it `pruned`)."""
    if job.name:
        record = runs.Run.parse(job.name).read()
        if record and record.get("status") in ("interrupted", "pruned"):
            notify.run_ended(runs.Run.parse(job.name), record=record)


def line(kind, job):
    trial = f"trial {job.trial.number}  " if job.trial is not None else ""
    text = f"{job.name or '(no run)'}  {trial}{overrides.argv(job.overrides)}"
    if kind == "start":
        return f"START {text}" + ("  (continued from its newest checkpoint)" if job.resume else "")
    if job.pruned:
        return f"PRUNE {text}  (after epoch {(runs.Run.parse(job.name).read() or {}).get('epoch', '?')})"
    if job.rc == 0:
        return f"DONE  {text}  ({job.seconds:.1f} s)"
    status = status_of(job.name)
    return f"FAIL  {text}  ({status + ', ' if status else ''}exit {job.rc}{': ' + job.why if job.why else ''})"


def status_of(name):
    """The status in the run's record, if the run got as far as one."""
    record = runs.Run.parse(name).read() if name else None
    return record and record.get("status")


def say(bar, text):
    bar.write(text, file=sys.stdout)
    sys.stdout.flush()
