"""verb: `sweep`, the command. Its flags and their checks, `run`'s git rules checked once up front,
what the tag has finished already, the backend's pool driven over the rest, and the summary:
list sweep-<tag> and its table."""
import importlib
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from utils import gitrepo, notify, overrides, paths, runs
from utils.errors import UserError
from utils.sweep import owner, plan, queued, resume, space
from utils.sweep.drive import drive

BACKENDS = {"local": "utils.sweep.local", "ray": "utils.sweep.raypool", "slurm": "utils.sweep.slurmarray"}  # name: module (see __init__.py)


def backend(name):
    return importlib.import_module(BACKENDS[name])


def add_sweep(p):
    p.add_argument("-f", action="store_true", help="fixed seed for every run: the value in code/seed")
    p.add_argument("--workers", type=int, metavar="N", help="runs at once without GPUs (default 1)")
    p.add_argument("--gpus", metavar="IDS", help="GPU ids, e.g. 0,1,2,3: each run sees one as CUDA_VISIBLE_DEVICES")
    p.add_argument("--per-gpu", type=int, metavar="K", help="runs at once on each GPU (default 1)")
    p.add_argument("--queue", action="store_true",
                   help="queue each combination as `run --queue` does (its slots: --workers or --gpus) and return")
    p.add_argument("--gpu-free-mb", type=int, metavar="MB", help="with --queue --gpus: a GPU is free below this memory")
    p.add_argument("--dry-run", action="store_true",
                   help="print the combinations that would run; run nothing (any file: uncommitted, outside code/)")
    p.add_argument("--wait", action="store_true",
                   help="if another `sweep` of the tag is running, wait for it to end, then go on (else: refused)")
    p.add_argument("--trials", type=int, metavar="N",
                   help="a search's budget, instead of the file's `trials:` (raise it to go on searching)")
    p.add_argument("--backend", choices=tuple(BACKENDS), default="local",
                   help="; ".join(f"{name}: {backend(name).HELP}" for name in BACKENDS))
    for name in BACKENDS:
        backend(name).add_options(p)
    p.add_argument("tag", help="the experiment's name: every run of the sweep is a run of this tag")
    p.add_argument("file", metavar="FILE.yaml",
                   help="the sweep file, committed under code/, e.g. code/sweeps/lr.yaml (--dry-run: any file)")


def sweep(args):
    gpus = check_flags(args)
    combinations = plan.load(args.file, overrides.load_config())
    queued.check(args, isinstance(combinations, space.Search))
    if isinstance(combinations, space.Search):
        return searching(args, gpus, combinations)
    if args.trials is not None:
        raise UserError(f"--trials with {args.file}, a grid", "--trials sets the budget of a file with `search:`")
    if args.dry_run:  # writes nothing, so any file may be tried first, committed or not
        gitrepo.check_tag_name(args.tag)  # the tag names a folder that is read
        for job in resume.to_run(args.tag, combinations, wait=False):
            print(f"  {'con ' + job.name + '  ' if job.resume else ''}{overrides.argv(job.overrides)}")
        return 0
    with driving(args) as (repo, head):
        return grid(args, gpus, combinations, repo, head)


def grid(args, gpus, combinations, repo, head):
    """The sweep's own: what is left after what earlier sweeps left, run, and the summary."""
    if args.queue:
        return queued.submit(args, resume.to_run(args.tag, combinations, wait=False, under_way=queued.UNDER_WAY))
    jobs = resume.to_run(args.tag, combinations)
    chosen = backend(args.backend)
    if jobs and hasattr(chosen, "submit_runs"):  # handed to a scheduler: this command does not wait
        return chosen.submit_runs(args, [job.overrides for job in jobs], lambda: gitrepo.ensure_tag(repo, args.tag, head))
    stopped = False
    if jobs:
        pool = chosen.Pool(args, gpus)
        gitrepo.ensure_tag(repo, args.tag, head)  # here, once: concurrent runs would race to create it
        began = time.monotonic()
        stopped = drive(pool, jobs, lambda job: command(args, job))
    failed = [job for job in jobs if job.rc not in (None, 0)]  # None: never started, the sweep was stopped
    summarise(args.tag, combinations, failed)
    if jobs:
        notify.sweep_ended(args.tag, [job.name for job in jobs if job.rc is not None], stopped, time.monotonic() - began)
    return 130 if stopped else 1 if failed else 0


@contextmanager
def driving(args):
    """`run`'s git rules checked, then the sweep of the tag owned (utils/sweep/owner.py) by this
    driver, which outlives its terminal; yields (repo, HEAD). Checked again after a --wait."""
    repo, head = check_git(args.tag, args.file)
    owner.outlive_terminal()
    with owner.owned(args.tag, args.wait) as waited:
        yield check_git(args.tag, args.file) if waited else (repo, head)


def searching(args, gpus, found):
    """A sweep file with `search:`: trials asked of Optuna, watched and pruned (utils/sweep/search.py)."""
    from utils.sweep import search

    search.optuna()
    budget = found.trials if args.trials is None else args.trials
    if args.dry_run:
        gitrepo.check_tag_name(args.tag)
        for key, dimension in found.space.items():
            print(f"  {key}: {dimension}")
        print(f"runtag: search {args.tag}: {found.method}, {args.trials or found.trials} trials toward "
              f"{found.goal} {found.metric}, pruning {found.prune}; {search.remaining(args.tag, found, budget)} to run")
        return 0
    if budget < 1:
        raise UserError(f"--trials {budget}", "give a number >= 1")
    with driving(args) as (repo, head):
        return search_owned(args, gpus, found, budget, repo, head)


def search_owned(args, gpus, found, budget, repo, head):
    from utils.sweep import search

    stopped, failed = False, 0
    if args.backend == "slurm":  # each array task asks and tells the study itself; this command exits
        if backend("slurm").submit_search(args, found, budget, lambda: gitrepo.ensure_tag(repo, args.tag, head)):
            return 0
        study = None  # all trials counted: the table below
    else:
        study = search.Study(args.tag, found, budget, runs.fixed_seed() if args.f else None)
        print(f"runtag: search {args.tag}: {budget} trials, {budget - study.todo} finished or pruned already, "
              f"{study.todo} to run", flush=True)
    if study and study.todo:
        pool = backend(args.backend).Pool(args, gpus)
        gitrepo.ensure_tag(repo, args.tag, head)
        began, asked = time.monotonic(), []
        jobs = (asked.append(job) or job for job in study.jobs())  # kept: the sweep's word names its runs
        stopped = drive(pool, jobs, lambda job: command(args, job), total=study.todo, search=study)
        failed = study.failed
        notify.sweep_ended(args.tag, [job.name for job in asked if job.rc is not None], stopped, time.monotonic() - began)
    names = search.runs_of(args.tag, found)
    print(f"runtag: search {args.tag}: {len(names)} of {budget} trials finished or pruned", flush=True)
    if names:
        from utils.statistic import record, table, title
        record.add(list_name(args.tag), names)
        title.write(list_name(args.tag))  # from all of its runs, not only those of the first call
        try:
            table.build(list_name(args.tag), sort=("-" if found.goal == "max" else "") + found.metric)
        except UserError:  # the metric is not a column of the list's title: the table as it is
            table.build(list_name(args.tag))
    return 130 if stopped else 1 if failed else 0


def check_flags(args):
    """The GPU ids, after every flag combination is checked: a mistake is one line, before anything."""
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}", "give a number >= 1")
    if args.per_gpu is not None and args.per_gpu < 1:
        raise UserError(f"--per-gpu {args.per_gpu}", "give a number >= 1")
    if args.per_gpu is not None and not args.gpus:
        raise UserError("--per-gpu without --gpus", "name the GPUs too, e.g. --gpus 0,1 --per-gpu 2")
    others = [name for name in BACKENDS if name != args.backend]
    for name, dest in [(name, dest) for name in others for dest in backend(name).OPTIONS]:
        if getattr(args, dest, None):  # a flag of another backend than the chosen one
            flag = "--" + dest.replace("_", "-")
            raise UserError(f"{flag} without --backend {name}", f"add --backend {name}, or leave {flag} out")
    gpus = [g.strip() for g in args.gpus.split(",")] if args.gpus else []
    if any(not g for g in gpus):
        raise UserError(f"--gpus {args.gpus!r}", "give comma-separated ids, e.g. --gpus 0,1,2,3")
    backend(args.backend).check(args, gpus)
    return gpus


def check_git(tag, file):
    """`run`'s rules, checked once up front: every run would otherwise fail with the same line."""
    repo, dirty = gitrepo.ready(tag)
    check_committed(repo, file)
    gitrepo.refuse_dirty(dirty, "commit them (the sweep file too): every run of a sweep is the tagged commit")
    head = repo.head.commit.hexsha
    marked = gitrepo.tag_commit(repo, tag)
    if marked and marked != head:
        raise UserError(f"tag {tag!r} already marks commit {marked[:10]}, not HEAD",
                        "check that commit out to resume its sweep, or choose a new tag")
    return repo, head


def check_committed(repo, file):
    """The sweep file shapes the runs, so the tagged commit must hold it as it is: else the sweep
    could not be repeated from the tag. `run` checks code/ only: a file elsewhere would pass."""
    code, path = paths.root() / "code", Path(file).resolve()
    if not path.is_relative_to(code):
        raise UserError(f"sweep file {file} is outside code/, so the tag would not hold it",
                        f"move it under code/ (e.g. code/sweeps/{path.name}) and commit it; "
                        "--dry-run reads it where it is")
    name = path.relative_to(paths.root()).as_posix()
    state = repo.git.status("--porcelain", "--ignored", "--untracked-files=all", "--", name)[:2]
    if state:  # ?? untracked, !! ignored, anything else changed since HEAD
        problem = {"??": "is untracked", "!!": "is ignored by git"}.get(state, "has uncommitted changes")
        add = "git add -f" if state == "!!" else "git add"
        raise UserError(f"sweep file {name} {problem}, so the tag would not hold it",
                        f"commit it first ({add} {name} && git commit); --dry-run reads it uncommitted")


def command(args, job):
    """The job's `run` command, or `continue` of the interrupted run it goes on with."""
    cli = paths.root() / "code" / "utils" / "cli.py"
    if job.resume:
        return [sys.executable, str(cli), "continue", job.name]
    return [sys.executable, str(cli), "run", *(["-f"] if args.f else []), args.tag, *overrides.words(job.overrides)]


def summarise(tag, combinations, failed):
    """The sweep's finished runs into list sweep-<tag>, and its table, as `table` builds it. The
    title is written again from every run of the list: a first call stopped early saw fewer."""
    from utils.statistic import record, table, title

    found = resume.finished_runs(tag)
    names = [found[key][-1] for key in map(overrides.canonical, combinations) if key in found]
    print(f"runtag: sweep {tag}: {len(names)} of {len(combinations)} combinations finished"
          + (f", {len(failed)} failed or interrupted now" if failed else ""), flush=True)
    if names:
        record.add(list_name(tag), names)
        title.write(list_name(tag))
        table.build(list_name(tag))


def list_name(tag):
    """sweep-<tag>, with the characters a tag may have but a list name may not (.) as _."""
    return "sweep-" + re.sub(r"[^A-Za-z0-9_+-]", "_", tag)
