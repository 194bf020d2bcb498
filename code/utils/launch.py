"""run, continue, rerun: decide what to run and where, then start code/main.py on a run folder."""
from contextlib import contextmanager

from utils import gitrepo, launcher, overrides, paths, runlock, runs, tboard
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
    p.add_argument("--nnodes", type=int, default=1, metavar="N", help="machines taking part in this run")
    p.add_argument("--node-rank", type=int, default=0, metavar="R", help="this machine's rank, 0..nnodes-1")
    p.add_argument("--master", metavar="HOST:PORT", help="where node 0 listens (with --nnodes > 1)")


def run(args):
    if joins(args):
        return execute(paths.root(), None, nproc=args.nproc, args=args)
    repo = gitrepo.open_repo()
    gitrepo.check_tag_name(args.tag)
    gitrepo.require_identity(repo)
    dirty = gitrepo.dirty_code(repo)
    if dirty and not args.m:
        raise UserError(f"code/ has uncommitted changes: {' '.join(dirty[:5])}{' ...' if len(dirty) > 5 else ''}",
                        "commit them, or `run -m MSG` to commit code/ first")
    parent_spec = args.parent or args.init_from  # --init-from alone also inherits the overrides
    parent = one_run(parent_spec) if parent_spec else None
    init = best_weights(args.init_from) if args.init_from else None
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
    elif args.m:  # not a mistake, but the user expected a commit: say there was none
        print(f"runtag: nothing to commit under code/; -m ignored, tagging HEAD {head[:10]} as it is", flush=True)
    gitrepo.ensure_tag(repo, args.tag, head)
    seed = runs.fixed_seed() if args.f else runs.fresh_seed()
    id, _ = runs.create(args.tag, head, args.command, changes, seed, args.f,
                        parent=parent_spec and name_of(parent), extra=init and {"init_from": init})
    with created(paths.run_dir(args.tag, id)):
        print(f"runtag: {args.tag}/{id} at {head[:10]} {changes or ''}", flush=True)
        tboard.serve_results(overrides.apply(config, changes))
        return execute(paths.root(), paths.run_dir(args.tag, id), nproc=args.nproc, args=args)


def best_weights(spec):
    """`--init-from tag/id`: that run, which must have a best checkpoint; recorded as `tag/id`."""
    record = one_run(spec)
    name = name_of(record)
    if not (paths.run_dir(record["tag"], record["id"]) / "checkpoint" / "epoch_best.pth").exists():
        raise UserError(f"{name} has no best checkpoint to start from", "choose a run that finished an epoch")
    return name


def joins(args):
    """True on machines other than node 0 of a multi-node run: node 0 makes the run and its
    record, and rank 0 hands both to every process; these only start their processes."""
    if args.nnodes > 1 and not (args.master and ":" in args.master):
        raise UserError("--nnodes > 1 needs --master HOST:PORT", "give node 0's address, e.g. --master node0:29500")
    if not 0 <= args.node_rank < args.nnodes:
        raise UserError(f"--node-rank {args.node_rank} is outside 0..{args.nnodes - 1}", "number the machines from 0")
    return args.node_rank > 0


def add_con(p):
    p.add_argument("-f", action="store_true", help="accepted and ignored: a continued run always keeps its recorded seed")
    p.add_argument("--force", action="store_true",
                   help="take a run whose record says running, when that process is gone and cannot be checked "
                        "(another host); never a run whose process is alive on this host")
    add_processes(p)
    p.add_argument("spec", metavar="TAG[/ID]", help="default id: the newest unfinished run of the tag")


def con(args):
    if joins(args):
        return execute(paths.root(), None, resume=True, nproc=args.nproc, args=args)
    repo = gitrepo.open_repo()
    run_dir = unfinished(args.spec)
    record = runs.read(run_dir)
    if record is None:
        raise UserError(f"the record of {args.spec} is missing or damaged", "`rerun` it, or choose another run")
    status = runs.shown_status(record)
    if status == "finished":
        raise UserError(f"{name_of(record)} is finished", f"`rerun {name_of(record)}` to run it again")
    runlock.acquire(run_dir, name_of(record), record.get("pid"))  # alive on this host: refused, whatever the flags
    if status == "running" and not args.force:
        raise UserError(f"{name_of(record)} is still running (pid {record['pid']} on {record['host']})",
                        "wait for it, stop it, or `con --force` if that process is gone")
    gitrepo.require_commit(repo, record["commit"], name_of(record))
    # Any epoch file, not only what epoch_last names: main.py goes on from the newest that loads
    # (loading is not for here: gigabytes, and torch's import) and refuses, status kept, if none does.
    if not any(p.is_file() for p in (run_dir / "checkpoint").glob("epoch_[0-9]*.pth")):
        raise UserError(f"{name_of(record)} has no checkpoint to continue from",
                        f"`rerun {name_of(record)}` to start it again")
    print(f"runtag: continuing {name_of(record)} from its newest checkpoint that loads", flush=True)
    with gitrepo.checkout_of(repo, record["commit"]) as where:
        return execute(where, run_dir, resume=True, nproc=args.nproc or per_node(record, args), args=args,
                       threads=record.get("threads"))


def add_rerun(p):
    p.add_argument("-f", action="store_true", help="the seed (and CPU thread count) of the run repeated, for a bit-identical result")
    add_processes(p)
    p.add_argument("spec", metavar="TAG[/ID]", help="the run whose overrides to use (default id 0)")


def rerun(args):
    if joins(args):
        return execute(paths.root(), None, nproc=args.nproc, args=args)
    repo = gitrepo.open_repo()
    tag, _, id = args.spec.partition("/")
    source = runs.read(runs.resolve(f"{tag}/{id or (runs.ids(tag) or [0])[0]}")[0])
    if source is None:
        raise UserError(f"the record of {args.spec} is missing or damaged", "choose another run of the tag")
    commit = gitrepo.tag_commit(repo, tag) or source["commit"]
    gitrepo.require_commit(repo, commit, name_of(source))
    seed = source["seed"] if args.f else runs.fresh_seed()
    extra = {"rerun_of": name_of(source), **({"init_from": source["init_from"]} if source.get("init_from") else {})}
    new_id, _ = runs.create(tag, commit, args.command, source["overrides"], seed, args.f and source["fixed_seed"],
                            parent=source.get("parent"), extra=extra)
    run_dir = paths.run_dir(tag, new_id)
    with created(run_dir):
        print(f"runtag: {tag}/{new_id} reruns {name_of(source)} at {commit[:10]}", flush=True)
        with gitrepo.checkout_of(repo, commit) as where:
            return execute(where, run_dir, nproc=args.nproc or per_node(source, args), args=args,
                           threads=source.get("threads") if args.f else None)  # -f: bit for bit, threads too


def per_node(record, args):
    """Processes per machine so that the run keeps its recorded world size."""
    return max(record.get("world_size", 1) // args.nnodes, 1)


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


def execute(checkout, run_dir, resume=False, nproc=None, args=None, threads=None):
    """Start the checkout's main.py on the run folder (see utils/launcher.py) and wait."""
    nodes = {"nnodes": args.nnodes, "node_rank": args.node_rank, "master": args.master} if args else {}
    return launcher.execute(checkout, run_dir, resume, nproc, threads=threads, **nodes)


@contextmanager
def created(run_dir):
    """From a new run's record to its processes: a Ctrl-C in between (a slow worktree, say)
    still ends the record `interrupted` rather than `running` with nobody behind it."""
    try:
        yield
    except KeyboardInterrupt:
        launcher.conclude(run_dir, "interrupted", ("running",))
        raise
