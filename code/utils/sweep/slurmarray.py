"""slurmarray: the backend that hands a sweep (or a search: SearchTask) to Slurm as one job array
and exits (utils/submit.py runs each task). Nothing stays on the login node: repeating the command submits what has neither
a finished run nor a job Slurm still holds, and once all are done builds the list and table."""
import os
import random
import signal

from utils import atomic, overrides, paths, runs, submit
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


def submit_search(args, found, budget, tag_it):
    """A search as a job array: one task per trial still to run, each asking the study itself
    (its journal is on the disk the nodes share). True if trials are queued or running now."""
    from utils.sweep import search

    live = {job for job, entry in submit.queued(args.tag).items() if entry.get("search")}
    # A running trial is asked again only when its task is known and gone: one that has just asked
    # has not written its job id yet, and must not be failed under it.
    study = search.Study(args.tag, found, budget, None,
                         alive=lambda trial: "job" not in trial.user_attrs or trial.user_attrs["job"] in live)
    done = search.counted(study.study.get_trials(deepcopy=False))
    todo = max(budget - done - len(live), 0)
    print(f"runtag: search {args.tag}: {budget} trials, {done} finished or pruned already, "
          f"{len(live)} queued or running in Slurm, {todo} to submit", flush=True)
    if todo:
        tag_it()
        seed = runs.fixed_seed() if args.f else random.randrange(2**31)
        tasks = [SearchTask(paths.root(), args.tag, found, budget, seed, args.f) for _ in range(todo)]
        jobs = submit.submit(args.tag, args.slurm_params, args.max_timeouts, [["search", args.tag]] * todo,
                             notes=[{"search": True}] * todo, tasks=tasks)
        submit.announce(args.tag, jobs, f"{todo} trial{'s' if todo > 1 else ''} of search {args.tag}")
    return bool(todo or live)


class SearchTask(submit.Task):
    """One trial of a search, as a Slurm array task: it asks the study for its values, runs the
    trial's run, watches it for the pruner and tells the study its end, all from the job.
    Started again by Slurm, it goes on with the same trial and run (its <job>.trial file)."""

    def __init__(self, root, tag, found, budget, seed, fixed):
        super().__init__(root, [], tag)
        self.found, self.budget, self.seed, self.fixed = found, budget, seed, fixed

    def command(self, job):
        from utils.sweep import search

        marker = submit.folder(self.tag) / f"{job}.trial"
        number = int(marker.read_text()) if marker.exists() else None
        index = int(os.environ.get("SLURM_ARRAY_TASK_ID") or 0)  # tasks that ask at once: different seeds
        self.study = search.Study(self.tag, self.found, self.budget, self.seed, alive=lambda trial: True,
                                  offset=7919 * index)
        self.trial = self.study.job(number)
        if number is None:
            self.trial.trial.set_user_attr("job", job)
            atomic.write_text(marker, f"{self.trial.trial.number}\n")
        self.trial.name = submit.started(self.tag, job)
        if self.trial.name:
            return ["continue", "--force", self.trial.name]
        return ["run", "--tagged", *(["-f"] if self.fixed else []), self.tag, *overrides.words(self.trial.overrides)]

    def poll(self, job):
        self.trial.name = self.trial.name or submit.started(self.tag, job)
        if self.study.watch(self.trial):
            self.group.signal(signal.SIGINT)

    def ended(self, job, rc):
        self.trial.name = self.trial.name or submit.started(self.tag, job)
        if rc in submit.STOPPED and not self.trial.pruned:
            return rc  # Slurm stopped it: requeued, this task goes on with it; cancelled, the next call asks again
        self.study.tell(self.trial)
        return 0 if self.trial.pruned else rc

    def again(self):
        return SearchTask(self.root, self.tag, self.found, self.budget, self.seed, self.fixed)
