"""resume: what a repeated sweep finds of the sweeps before it, and so what is left to run.

A driver that was killed leaves its runs ending (each got SIGTERM: utils/sweep/job.py), and some
of them may finish first. So before counting, the repeat waits for the tag's runs that are still
alive (their folder's lock held: utils/runlock.py); then a combination with a finished run is
done, and one whose run ended `interrupted` (or `dead`, `killed`) with a checkpoint is continued
(`con tag/id`) rather than started again: no epoch is lost. Anything else runs anew."""
import time

from utils import checkpoints, overrides, runlock, runs, slurm
from utils.sweep.job import POLL_S, Job

CONTINUED = ("interrupted", "dead", "killed")  # ends a `con` goes on from


def key(record):
    found = record.get("overrides") if isinstance(record, dict) else None
    return overrides.canonical(found) if isinstance(found, dict) else None


def settle(tag, combinations):
    """Wait until no run of the tag's combinations is alive: runs a killed driver left ending."""
    wanted, said = {overrides.canonical(c) for c in combinations}, False
    while busy := alive(tag, wanted):
        if not said:
            print(f"runtag: sweep {tag}: waiting for {', '.join(map(str, busy))} to end first "
                  "(still running, left by a sweep that stopped)", flush=True)
            said = True
        while any(runlock.locked(run.dir) for run in busy):
            time.sleep(POLL_S)


def alive(tag, wanted):
    """The tag's runs of those combinations whose folder lock is held, but not those a live Slurm
    job runs: no sweep left them, and the Slurm backend counts them as queued or running."""
    found = [(run, record) for run, record in runs.records(runs.of(tag))
             if key(record) in wanted and runlock.locked(run.dir)]
    queue = slurm.queue_of([record for _, record in found])
    return [run for run, record in found
            if queue.get(str(record.get("slurm_job_id"))) not in (*slurm.WAITING, *slurm.RUNNING)]


def to_run(tag, combinations, wait=True, under_way=("queued",)):
    """The Jobs of the combinations without a finished run under the tag, announced in one line;
    a job that continues a run has its name and `resume`. `wait`: settle first (not for --dry-run).
    A combination whose run has a status of `under_way` is not run again: a queued run waits for
    the queue's waiter (utils/runqueue/); `sweep --queue` adds `running`, as it waits for nothing."""
    if wait:
        settle(tag, combinations)
    finished, left, waiting = {}, {}, set()
    for run, record in runs.records(runs.of(tag)):
        status = runs.status(record) if key(record) is not None else None
        if status == "finished":
            finished.setdefault(key(record), []).append(str(run))
        elif status in under_way:
            waiting.add(key(record))
        elif status in CONTINUED and checkpoints.files(run.checkpoints):
            left[key(record)] = str(run)  # the newest of a combination's, if several
    jobs, busy = [], 0
    for combination in combinations:
        name = overrides.canonical(combination)
        if name in finished:
            continue
        if name in waiting:
            busy += 1
        else:
            jobs.append(Job(combination, name=left.get(name), resume=name in left))
    going_on = [job.name for job in jobs if job.resume]
    print(f"runtag: sweep {tag}: {len(combinations)} combinations, "
          f"{len(combinations) - len(jobs) - busy} finished already, "
          + (f"{busy} under way ({'/'.join(under_way)}), " if busy else "") + f"{len(jobs)} to run"
          + (f" ({len(going_on)} continued: {', '.join(going_on)})" if going_on else ""), flush=True)
    return jobs


def finished_runs(tag):
    """{canonical overrides: [tag/id, ...]} of the tag's finished runs, oldest first."""
    found = {}
    for run, record in runs.records(runs.of(tag)):
        if key(record) is not None and record.get("status") == "finished":
            found.setdefault(key(record), []).append(str(run))
    return found
