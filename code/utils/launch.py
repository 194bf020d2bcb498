"""run, continue, rerun: decide what to run and where, then start code/main.py on a run folder."""
import os
import signal
import subprocess
import sys

from utils import gitrepo, overrides, paths, runs
from utils.errors import UserError


def add_run(p):
    p.add_argument("-f", action="store_true", help="fixed seed: the value in code/seed")
    p.add_argument("-m", metavar="MSG", help="commit the changes under code/ with this message first")
    p.add_argument("--from", dest="parent", metavar="TAG/ID", help="inherit that run's overrides")
    p.add_argument("--init-from", metavar="TAG/ID", help="also start from that run's best weights")
    add_processes(p)
    p.add_argument("tag", help="the experiment's name; becomes an annotated git tag on HEAD")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config.py values for this run")


def add_processes(p):
    p.add_argument("--nproc", type=int, metavar="N", help="processes (DDP); default: visible GPUs, else 1")


def run(args):
    repo = gitrepo.open_repo()
    gitrepo.check_tag_name(args.tag)
    gitrepo.require_identity(repo)
    dirty = gitrepo.dirty_code(repo)
    if dirty and not args.m:
        raise UserError(f"code/ has uncommitted changes: {' '.join(dirty[:5])}{' ...' if len(dirty) > 5 else ''}",
                        "commit them, or `run -m MSG` to commit code/ first")
    parent_spec = args.init_from or args.parent
    parent = one_run(parent_spec) if parent_spec else None
    config = overrides.load_config()
    changes = {**(parent["overrides"] if parent else {}), **overrides.parse(args.overrides, config)}
    import args_process
    args_process.check(overrides.apply(config, changes))
    head = repo.head.commit.hexsha
    if dirty and gitrepo.tag_commit(repo, args.tag):  # -m makes a new commit: the tag would mark another
        gitrepo.ensure_tag(repo, args.tag, None)
    if dirty:
        gitrepo.commit_code(repo, args.m)
        head = repo.head.commit.hexsha
    gitrepo.ensure_tag(repo, args.tag, head)
    seed = runs.fixed_seed() if args.f else runs.fresh_seed()
    extra = {"init_from": args.init_from} if args.init_from else None
    id, _ = runs.create(args.tag, head, args.command, changes, seed, args.f,
                        parent=parent_spec and name_of(parent), extra=extra)
    print(f"runtag: {args.tag}/{id} at {head[:10]} {changes or ''}", flush=True)
    return execute(paths.root(), paths.run_dir(args.tag, id), nproc=args.nproc)


def add_con(p):
    p.add_argument("-f", action="store_true", help="take the run even if its record says it is running elsewhere")
    add_processes(p)
    p.add_argument("spec", metavar="TAG[/ID]", help="default id: the newest unfinished run of the tag")


def con(args):
    repo = gitrepo.open_repo()
    run_dir = unfinished(args.spec)
    record = runs.read(run_dir)
    status = runs.shown_status(record)
    if status == "running" and not args.f:
        raise UserError(f"{name_of(record)} is still running (pid {record['pid']} on {record['host']})",
                        "wait for it, stop it, or `con -f` if that process is gone")
    if not (run_dir / "checkpoint" / "epoch_last.pth").exists():
        raise UserError(f"{name_of(record)} has no checkpoint to continue from",
                        f"`rerun {name_of(record)}` to start it again")
    print(f"runtag: continuing {name_of(record)} after epoch {record['epoch']}", flush=True)
    with gitrepo.checkout_of(repo, record["commit"]) as where:
        return execute(where, run_dir, resume=True, nproc=args.nproc or record.get("world_size"))


def add_rerun(p):
    p.add_argument("-f", action="store_true", help="the seed of the run repeated, for a bit-identical result")
    add_processes(p)
    p.add_argument("spec", metavar="TAG[/ID]", help="the run whose overrides to use (default id 0)")


def rerun(args):
    repo = gitrepo.open_repo()
    tag, _, id = args.spec.partition("/")
    source = runs.read(runs.resolve(f"{tag}/{id or (runs.ids(tag) or [0])[0]}")[0])
    if source is None:
        raise UserError(f"the record of {args.spec} is missing or damaged", "choose another run of the tag")
    commit = gitrepo.tag_commit(repo, tag) or source["commit"]
    seed = source["seed"] if args.f else runs.fresh_seed()
    new_id, _ = runs.create(tag, commit, args.command, source["overrides"], seed, args.f and source["fixed_seed"],
                            parent=source.get("parent"), extra={"rerun_of": name_of(source)})
    print(f"runtag: {tag}/{new_id} reruns {name_of(source)} at {commit[:10]}", flush=True)
    with gitrepo.checkout_of(repo, commit) as where:
        return execute(where, paths.run_dir(tag, new_id), nproc=args.nproc or source.get("world_size"))


def one_run(spec):
    """The record of exactly one run, `tag/id` (a bare tag: its newest run)."""
    record = runs.read(runs.resolve(spec)[-1])
    if record is None:
        raise UserError(f"the record of {spec} is missing or damaged", "choose another run")
    return record


def unfinished(spec):
    """The run to continue: the one named, or the newest unfinished one of the tag."""
    dirs = runs.resolve(spec)
    if "/" in spec:
        return dirs[0]
    for d in reversed(dirs):
        record = runs.read(d)
        if record and record.get("status") != "finished":
            return d
    raise UserError(f"every run of {spec!r} is finished", f"`rerun {spec}` to run it again")


def name_of(record):
    return f"{record['tag']}/{record['id']}"


def execute(checkout, run_dir, resume=False, nproc=None):
    """Start the checkout's main.py on the run folder and wait; Ctrl-C reaches the run, which
    ends itself as `interrupted` after its last checkpoint is safe."""
    cmd = [sys.executable, str(checkout / "code" / "main.py"), "--run-dir", str(run_dir)]
    if resume:
        cmd.append("--resume")
    env = {**os.environ, "RUNTAG_ROOT": str(paths.root())}
    child = subprocess.Popen(cmd, env=env)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal sends it to the run too
    try:
        rc = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return rc if rc >= 0 else 128 - rc
