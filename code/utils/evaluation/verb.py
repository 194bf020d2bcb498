"""`eval` (shell `expeval`): ended runs' checkpoints scored again, the metrics added to their records.

Every check first (the runs, the checkpoint, the overrides, the name, each run's config), so that
a mistake is one line and nothing written. Then per run, --workers at a time: its lock taken (a
run that started meanwhile is refused), child.py scores it in the checkout whose code counts, and
the metrics and their provenance go into the record (utils/amend.py: atomic, under the lock).
--backend ray|slurm: every run's lock taken first, child.py run by a Ray task or a Slurm job
(rayeval.py, slurmeval.py), the metrics handed back here, and the records written here the same way.
"""
import importlib
import sys
from contextlib import ExitStack

from utils import amend, gitrepo, overrides, runs
from utils.errors import UserError
from utils.evaluation import choice, entry, workers
from utils.launch import count

BACKENDS = {"ray": "utils.evaluation.rayeval", "slurm": "utils.evaluation.slurmeval"}  # besides local: workers


def backend(name):
    return importlib.import_module(BACKENDS[name])


def add_evaluate(p):
    p.add_argument("--checkpoint", default="best", metavar="C",
                   help="best (default), last, epoch_<n> or epoch_<n>_step_<k>: the file in checkpoint/")
    p.add_argument("--name", help="the name its metrics go under, eval/NAME/<split>/...; default from the overrides")
    p.add_argument("--fn", metavar="NAME", help="a function (model, loader, args) -> metrics of code/evaluate.py, "
                                               "or module.function of code/; default epoch.evaluate")
    p.add_argument("--at-run", action="store_true", help="with the code of the run's own commit, not HEAD's")
    p.add_argument("--force", action="store_true", help="replace an eval of the same name and split")
    p.add_argument("--workers", type=count, metavar="N", help="runs scored at once (default 1)")
    p.add_argument("--gpus", metavar="IDS", help="GPU ids, e.g. 0,1: each child sees one as CUDA_VISIBLE_DEVICES")
    p.add_argument("--per-gpu", type=count, metavar="N", help="children per GPU (with --gpus)")
    p.add_argument("--backend", choices=("local", *BACKENDS), default="local",
                   help="local: child processes here (default); ray: a Ray task per run (the sweep's --address); "
                        "slurm: a Slurm job array, waited for (the sweep's resource flags)")
    for name in BACKENDS:
        backend(name).add_options(p)
    p.add_argument("words", nargs="+", metavar="RUNS|key=value",
                   help="runs (a tag, tag/id, or a quoted glob), then overrides: data, split (test, val, train), "
                        "batch_size, precision, device, ...")


def evaluate(args):
    specs = [w for w in args.words if "=" not in w]  # a tag never holds `=` (gitrepo.TAG)
    if not specs:
        raise UserError("no runs named", "name them: a tag, tag/id or a quoted glob, before the key=value words")
    gpus = gpu_ids(args)
    check_backend(args, gpus)
    repo = gitrepo.open_repo()
    chosen = runs.resolve(specs)
    file = choice.checkpoint_file(args.checkpoint)
    changes, split = choice.eval_overrides([w for w in args.words if "=" in w], overrides.load_config())
    fn = choice.function(args.fn)
    name = choice.check_name(args.name or choice.default_name(changes, fn))
    todo = [(run, choice.ready(run, file, name, split, args.force)) for run in chosen]
    head = repo.head.commit.hexsha
    with ExitStack() as stack:
        places = {}
        for run, record in todo:
            commit = record["commit"] if args.at_run else head
            if commit not in places:
                gitrepo.require_commit(repo, commit, str(run))
                where = stack.enter_context(gitrepo.checkout_of(repo, commit))
                places[commit] = (where, overrides.load_config(where / "code"))
            choice.check_config(places[commit][1], record, changes)
        jobs = [Job(run, record, record["commit"] if args.at_run else head, places) for run, record in todo]
        ask = dict(file=file, changes=changes, split=split, fn=fn, name=name, force=args.force, at_run=args.at_run)
        if args.backend == "local":
            envs = workers.slots(args.workers, gpus, args.per_gpu)
            workers.each(jobs, envs, lambda job, env: job.do(env, **ask))
        else:
            remotely(backend(args.backend).Pool(args, gpus), jobs, ask)
    return outcome(jobs)


def remotely(pool, jobs, ask):
    """Every run's lock taken, then all scored by the pool at once, each record written here as
    its metrics come back. A Ctrl-C (or any error) stops the pool's tasks or jobs."""
    held = []
    try:
        held = [job for job in jobs if job.hold()]
        if held:
            pool.start([(job.where / "code", job.request(**ask)) for job in held], [str(job.run) for job in held])
            for index, done in pool.results():
                held[index].finish(done, **ask)
    except BaseException:
        pool.stop()
        raise
    finally:
        try:
            pool.close()
        finally:
            for job in held:
                job.let_go()


class Job:
    """One run to score, and how it went (`failed`: None, or the child's exit status)."""

    def __init__(self, run, record, commit, places):
        self.run, self.record, self.commit = run, record, commit
        self.where = places[commit][0]
        self.failed, self.said, self.fd = None, "", None

    def do(self, env, **ask):
        if self.hold():  # held from the score to the write: no run starts on it meanwhile
            try:
                self.finish(workers.score(self.where / "code", self.request(**ask), env), **ask)
            finally:
                self.let_go()

    def hold(self):
        """The run's lock taken; False (the job failed) if its run started meanwhile."""
        try:
            self.fd = amend.lock(self.run)
        except UserError as err:
            self.fail(2, str(err))
            return False
        return True

    def let_go(self):
        amend.release(self.run, self.fd)

    def request(self, file, changes, split, fn, **_):
        """What child.py is asked (JSON)."""
        return {"file": str(self.run.checkpoints / file), "overrides": {**self.record["overrides"], **changes},
                "split": split, "fn": fn, "seed": self.record["seed"]}

    def finish(self, done, **ask):
        """The child's end: its metrics written, or its failure kept (done None: never started)."""
        if done is None:
            return self.fail(130, "stopped before it was scored")
        try:
            self.write(done, **ask)
        except UserError as err:  # it started to run, or its record changed, meanwhile
            self.fail(2, str(err))

    def write(self, done, file, changes, split, fn, name, force, at_run):
        if done.rc != 0:
            return self.fail(done.rc, done.err)
        provenance = dict(name=name, split=split, fn=fn, commit=self.commit, at_run=at_run,
                          checkpoint=choice.resolved(self.run.checkpoints / file), chosen=file, overrides=changes,
                          time=done.began, host=done.host, duration_s=round(done.seconds, 3))
        with amend.amending(self.run) as record:
            entry.refuse_taken(self.run, record, name, split, force)  # another eval wrote it meanwhile
            entry.add(record, done.metrics, provenance)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in done.metrics.items())
        print(f"{self.run} {entry.prefix(name, split).rstrip('/')}: {shown}  ({done.seconds:.1f} s)", flush=True)

    def fail(self, rc, text):
        self.failed, self.said = rc, text


def outcome(jobs):
    """Each failure said; exit 0 if none, 2 if every one was a mistake (one line each), else 1."""
    failed = [job for job in jobs if job.failed is not None]
    for job in failed:
        lines = [line for line in job.said.splitlines() if line.strip()]
        if job.failed == 2 and len(lines) == 1:
            line = lines[0].removeprefix("runtag: ")
            print(f"runtag: {line}" if str(job.run) in line else f"runtag: {job.run}: {line}", file=sys.stderr)
            continue
        sys.stderr.write("".join(f"    {line}\n" for line in lines[-30:]))  # its traceback's end
        print(f"runtag: the eval of {job.run} failed (exit {job.failed}) — its error is above; nothing was written "
              "to its record", file=sys.stderr)
    if failed and len(failed) < len(jobs):
        print(f"runtag: {len(jobs) - len(failed)} of {len(jobs)} runs scored", file=sys.stderr)
    if not failed:
        return 0
    return 2 if all(job.failed == 2 and len(job.said.strip().splitlines()) == 1 for job in failed) else 1


def gpu_ids(args):
    if args.per_gpu and not args.gpus:
        raise UserError("--per-gpu without --gpus", "name the GPUs too, e.g. --gpus 0,1 --per-gpu 2")
    if args.gpus and args.workers:
        raise UserError("--workers with --gpus", "choose one: with --gpus there are (GPUs x --per-gpu) workers")
    gpus = [g.strip() for g in args.gpus.split(",")] if args.gpus else []
    if any(not g for g in gpus):
        raise UserError(f"--gpus {args.gpus!r}", "give comma-separated ids, e.g. --gpus 0,1")
    return gpus


def check_backend(args, gpus):
    """A flag of a backend not chosen is a mistake, as in `sweep`; the chosen one checks its own."""
    for name, dest in [(name, dest) for name in BACKENDS if name != args.backend for dest in backend(name).OPTIONS]:
        if getattr(args, dest, None):
            flag = "--" + dest.replace("_", "-")
            raise UserError(f"{flag} without --backend {name}", f"add --backend {name}, or leave {flag} out")
    if args.backend != "local":
        backend(args.backend).check(args, gpus)
