"""`run --slurm --after RUNS`: the job waits through Slurm's own dependency on the jobs those runs
are in (`--dependency=afterany:…`, `afterok:…` with --after-ok), not through a poll of ours.

A run submitted with --slurm has no record until its job starts, so a bare tag also names the
tag's jobs that Slurm still holds (jobs.queued); a run that has already ended needs no waiting,
unless --after-ok and it did not finish (then nothing would ever start it: one line)."""
from utils import jobs, runs, slurm
from utils.errors import UserError

ENDED_OK = ("finished",)


def after(specs, ok):
    """Slurm's dependency string for the runs named ('' when every one has ended as it should)."""
    waited = []
    for spec in specs:
        tag, _, id = spec.partition("/")
        live = [] if id else list(jobs.queued(tag))  # submitted, maybe not started: no run yet
        named = runs.resolve([spec]) if id or not live else runs.of(tag)
        waited += live + [job for run in named if (job := job_of(run, ok))]
    waited = list(dict.fromkeys(waited))
    return f"{'afterok' if ok else 'afterany'}:{':'.join(waited)}" if waited else ""


def job_of(run, ok):
    """The live Slurm job of a run that has not ended; None for one that has."""
    record = run.read() or {}
    job = record.get("slurm_job_id")
    status = runs.status(record, slurm.queue_of([record]))
    if status in ("running", "pending", "queued"):
        if not job or status == "queued":
            raise UserError(f"{run} is {status} outside Slurm, which cannot wait for it",
                            f"`run --queue --after {run}` waits for it on this machine")
        return str(job)
    if ok and status not in ENDED_OK:
        raise UserError(f"{run} ended {status}, so --after-ok would never start this job",
                        f"drop --after-ok, or `con {run}` first")
    return None


def apply(args, params):
    """With --slurm --after: the dependency in the job's sbatch options (a dependency that can
    never be met, an --after-ok run failed, makes Slurm cancel the job rather than hold it)."""
    if params is None or not args.after:
        if params is None or not args.after_ok:
            return params
        raise UserError("--after-ok without --after", "name the runs to wait for: --after TAG --after-ok")
    named = [spec for given in args.after for spec in given.split(",") if spec]
    wanted = after(named, args.after_ok)
    if wanted:
        params["additional_parameters"].update({"dependency": wanted, "kill-on-invalid-dep": "yes"})
    return params
