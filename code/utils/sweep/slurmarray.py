"""slurmarray: the backend that hands a sweep to Slurm as one job array and exits (utils/submit.py
runs each task). Nothing stays on the login node: repeating the command submits what has neither
a finished run nor a job Slurm still holds, and once all are done builds the list and table."""
from utils import overrides, submit
from utils.errors import UserError

HELP = "one Slurm job array, submitted; the command exits (see README, Slurm)"
OPTIONS = (*submit.OPTIONS, "array_parallelism")


def add_options(p):
    submit.add_options(p, array=True)


def check(args, gpus):
    for flag, value in (("--workers", args.workers), ("--gpus", args.gpus), ("--per-gpu", args.per_gpu)):
        if value is not None:
            raise UserError(f"{flag} with --backend slurm", "Slurm places the runs: give --gpus-per-run, "
                                                            "--cpus-per-run and --array-parallelism instead")
    args.slurm_params = submit.check(args)


def submit_runs(args, todo, tag_it):
    """Submit a job array of the combinations that Slurm does not hold already; 0."""
    held = {overrides.canonical(e.get("overrides") or {}) for e in submit.queued(args.tag).values()}
    todo = [c for c in todo if overrides.canonical(c) not in held]
    print(f"runtag: sweep {args.tag}: {len(held)} queued or running in Slurm already, {len(todo)} to submit", flush=True)
    if not todo:
        return 0
    tag_it()
    argvs = [["run", "--tagged", *(["-f"] if args.f else []), args.tag, *overrides.words(c)] for c in todo]
    jobs = submit.submit(args.tag, args.slurm_params, args.max_timeouts, argvs, notes=[{"overrides": c} for c in todo])
    submit.announce(args.tag, jobs, f"{len(jobs)} run{'s' if len(jobs) > 1 else ''} of sweep {args.tag}")
    print("runtag: repeat this command to submit what is left (nothing while they run) "
          "and, once all are finished, to build the sweep's table", flush=True)
    return 0
