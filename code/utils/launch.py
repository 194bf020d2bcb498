"""run, continue, rerun: decide what to run and where, then start code/main.py on it (utils/supervisor.py)."""
import argparse
from contextlib import contextmanager, suppress

from utils import atomic, checkpoints, dependency, gitrepo, overrides, paths, runs, slurm, submit, tboard
from utils.errors import UserError
from utils.runqueue import verb as queue
from utils.supervisor import created, execute


def add_run(p):
    p.add_argument("-f", action="store_true", help="fixed seed: the value in code/seed")
    p.add_argument("-m", metavar="MSG", help="commit the changes under code/ with this message first")
    p.add_argument("--from", dest="parent", metavar="TAG/ID", help="inherit that run's overrides")
    p.add_argument("--init-from", metavar="TAG/ID", help="also start from that run's best weights")
    add_processes(p)
    queue.add_options(p)
    p.add_argument("--tagged", action="store_true", help=argparse.SUPPRESS)  # a Slurm job's run: see utils/submit.py
    p.add_argument("tag", help="the experiment's name; becomes an annotated git tag on HEAD")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config.py values for this run")


def add_processes(p):
    p.add_argument("--nproc", type=count, metavar="N", help="processes (DDP); default: visible GPUs, else 1")
    p.add_argument("--nnodes", type=count, default=1, metavar="N", help="machines taking part in this run")
    p.add_argument("--node-rank", type=int, default=0, metavar="R", help="this machine's rank, 0..nnodes-1")
    p.add_argument("--master", metavar="HOST:PORT", help="where node 0 listens (with --nnodes > 1)")
    p.add_argument("--slurm", action="store_true", help="submit it as a Slurm job and exit (flags below; see README, Slurm)")
    submit.add_options(p)


def count(text):
    """A number of processes or machines: a whole number >= 1 (0 and -1 are no default; torch
    asserts on -1 only after the tag and the run exist)."""
    try:
        number = int(text)
    except ValueError:
        number = None
    if number is None or number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return number


def slurm_params(args):
    """With --slurm, submitit's parameters (every flag checked); without, None, and no Slurm flag given."""
    if not args.slurm:
        given = [dest for dest in submit.OPTIONS if getattr(args, dest, None) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UserError(f"{flag} without --slurm", f"add --slurm to submit the run as a job, or leave {flag} out")
        return None
    if args.node_rank or args.master:
        raise UserError("--node-rank or --master with --slurm", "leave them out: Slurm's job says which node is which")
    return submit.check(args)


def run(args):
    if args.tagged:
        return run_tagged(args)
    plan = queue.check(args)  # --queue: made now, started by the waiter (utils/runqueue/)
    params = dependency.apply(args, slurm_params(args))  # --slurm --after: Slurm's own dependency
    if params is None and joins(args):  # a Slurm job's nodes are told their ranks in the job
        return execute(paths.root(), None, nproc=args.nproc, args=args)
    repo, dirty = gitrepo.ready(args.tag)
    if not args.m:
        gitrepo.refuse_dirty(dirty, "commit them, or `run -m MSG` to commit code/ first")
    parent_spec = args.parent or args.init_from  # --init-from alone also inherits the overrides
    parent = runs.one(parent_spec) if parent_spec else None
    init = best_weights(args.init_from) if args.init_from else None
    config = overrides.load_config()
    changes = {**(parent[1]["overrides"] if parent else {}), **overrides.parse(args.overrides, config)}
    from utils import settings
    settings.check(overrides.apply(config, changes))
    head = repo.head.commit.hexsha
    if dirty and gitrepo.tag_commit(repo, args.tag):  # -m makes a new commit: the tag would mark another
        gitrepo.ensure_tag(repo, args.tag, None)
    if dirty:
        gitrepo.commit_code(repo, args.m)
        head = repo.head.commit.hexsha
    elif args.m:  # not a mistake, but the user expected a commit: say there was none
        print(f"runtag: nothing to commit under code/; -m ignored, tagging HEAD {head[:10]} as it is", flush=True)
    made = gitrepo.ensure_tag(repo, args.tag, head)
    with taken_back(repo, args.tag, made):
        if params is not None:
            return submitted(args, params, args.tag, job_argv(args, changes), f"a run of {args.tag} at {head[:10]} {changes or ''}")
        if plan is not None:
            return queue.submit(plan, args.tag, head, args.command, changes, runs.fixed_seed() if args.f else runs.fresh_seed(),
                                args.f, parent=parent and str(parent[0]), extra={"init_from": init} if init else None)
        return start(args, head, changes, parent, init, paths.root(), config)


@contextmanager
def taken_back(repo, tag, made):
    """A failed start leaves no tag behind: one this command made is deleted again (with its
    empty folder) when the start failed before any run of it exists (a full or read-only disk).
    The run's own folder: runs.create and created() give it back."""
    try:
        yield
    except BaseException:
        if made and not runs.ids(tag):
            gitrepo.delete_tag(repo, tag)
            with suppress(OSError):
                (paths.results() / tag).rmdir()  # only if empty
        raise


def start(args, commit, changes, parent, init, checkout, config):
    seed = runs.fixed_seed() if args.f else runs.fresh_seed()
    new, _ = runs.create(args.tag, commit, args.command, changes, seed, args.f, parent=parent and str(parent[0]),
                         extra={**({"init_from": init} if init else {}), **slurm.job_fields()})
    with created(new):
        print(f"runtag: {new} at {commit[:10]} {changes or ''}", flush=True)
        if not slurm.job_id():  # a compute node serves no TensorBoard: `itb` on the login node does
            tboard.serve_results(overrides.apply(config, changes))
        return execute(checkout, new, nproc=args.nproc, args=args)


def run_tagged(args):
    """`run --tagged`, what a Slurm job runs: the commit the tag marks, in a checkout of its own,
    whatever the user's working tree holds by the time the job starts (hours after the submit)."""
    repo = gitrepo.open_repo()
    commit = gitrepo.tag_commit(repo, args.tag)
    if not commit:
        raise UserError(f"tag {args.tag!r} marks no commit", "submit the run again: `run --slurm` tags it first")
    args.command = args.command.replace("--tagged ", "", 1)  # the record shows what a person would type
    with gitrepo.checkout_of(repo, commit) as where:
        if joins(args):
            return execute(where, None, nproc=args.nproc, args=args)
        parent = runs.one(args.parent or args.init_from) if (args.parent or args.init_from) else None
        init = best_weights(args.init_from) if args.init_from else None
        config = overrides.load_config(where / "code")  # the tagged commit's config.py, not the working tree's
        changes = {**(parent[1]["overrides"] if parent else {}), **overrides.parse(args.overrides, config)}
        return start(args, commit, changes, parent, init, where, config)


def job_argv(args, changes):
    """The `run` a Slurm job does: this one, at the tag's commit, with its overrides resolved."""
    flags = [*(["-f"] if args.f else []), *(["--from", args.parent] if args.parent else []),
             *(["--init-from", args.init_from] if args.init_from else []),
             *(["--nproc", str(args.nproc)] if args.nproc else [])]
    return ["run", "--tagged", *flags, args.tag, *overrides.words(changes)]


def submitted(args, params, tag, argv, what, name=None):
    """One job that runs argv (`cli.py` words), announced; `name`: the run it continues."""
    jobs = submit.submit(tag, params, args.max_timeouts, [argv], name=name)
    submit.announce(tag, jobs, what)
    return 0


def best_weights(spec):
    """`--init-from tag/id`: that run, which must have a best checkpoint; recorded as `tag/id`."""
    source, _ = runs.one(spec)
    if not (source.checkpoints / runs.BEST).exists():
        raise UserError(f"{source} has no best checkpoint to start from", "choose a run that finished an epoch")
    return str(source)


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
    queue.add_options(p)
    p.add_argument("spec", metavar="TAG[/ID]", help="default id: the newest unfinished run of the tag")


def con(args):
    plan = queue.check(args)
    params = slurm_params(args)
    if params is None and joins(args):  # a Slurm job's nodes are told their ranks in the job
        return execute(paths.root(), None, resume=True, nproc=args.nproc, args=args)
    repo = gitrepo.open_repo()
    run, record = unfinished(args.spec)
    status = runs.status(record, slurm.queue_of([record]))
    if status == "finished":
        raise UserError(f"{run} is finished", f"`rerun {run}` to run it again")
    if status == "queued":
        raise UserError(f"{run} waits in the queue, which will start it", f"let it, or `queue rm {run}` first")
    if status == "pending":
        raise UserError(f"{run} waits in Slurm job {record['slurm_job_id']}, which will continue it",
                        f"let it, or `scancel {record['slurm_job_id']}` first")
    run.lock(record.get("pid"))  # alive on this host: refused, whatever the flags
    if status == "running" and not args.force:
        raise UserError(f"{run} is still running (pid {record['pid']} on {record['host']})",
                        "wait for it, stop it, or `con --force` if that process is gone")
    gitrepo.require_commit(repo, record["commit"], str(run))
    # Any epoch file, not only what epoch_last names: main.py goes on from the newest that loads
    # (loading is not for here: gigabytes, and torch's import) and refuses, status kept, if none does.
    if not checkpoints.files(run.checkpoints):
        raise UserError(f"{run} has no checkpoint to continue from{checkpoints.removed_said(record)}",
                        f"`rerun {run}` to start it again")
    atomic.check_writable(run.dir, run.checkpoints, run.tensorboard)  # read-only: one line, before main.py
    for tmp in run.dir.glob(f".{runs.RECORD}.*.tmp"):  # a record write killed mid-way; the lock is ours
        tmp.unlink(missing_ok=True)
    if params is not None:
        argv = ["continue", *(["--nproc", str(args.nproc)] if args.nproc else []), str(run)]
        return submitted(args, params, run.tag, argv, f"the continuation of {run}", name=str(run))
    if plan is not None:
        return queue.resubmit(plan, run, per_node(record, args))
    if fields := slurm.job_fields():  # continued in a job: its id, how often Slurm requeued it
        run.write({**run.read(), **fields})
    print(f"runtag: continuing {run} from its newest checkpoint that loads", flush=True)
    with gitrepo.checkout_of(repo, record["commit"]) as where:
        return execute(where, run, resume=True, nproc=args.nproc or per_node(record, args), args=args,
                       threads=record.get("threads"))


def add_rerun(p):
    p.add_argument("-f", action="store_true", help="the seed (and CPU thread count) of the run repeated, for a bit-identical result")
    add_processes(p)
    queue.add_options(p)
    p.add_argument("spec", metavar="TAG[/ID]", help="the run whose overrides to use (default id 0)")


def rerun(args):
    plan = queue.check(args)
    params = slurm_params(args)
    if params is None and joins(args):  # a Slurm job's nodes are told their ranks in the job
        return execute(paths.root(), None, nproc=args.nproc, args=args)
    repo = gitrepo.open_repo()
    old, source = runs.one(args.spec, choose=lambda found: found[0])  # a bare tag: its first run
    # an imported run whose tag here marks another commit ran its own (housekeeping/merge.py fetched it)
    imported = source.get("commit") if source.get("imported_from") else None
    commit = imported or gitrepo.tag_commit(repo, old.tag) or source["commit"]
    gitrepo.require_commit(repo, commit, str(old))
    if params is not None:
        argv = ["rerun", *(["-f"] if args.f else []), *(["--nproc", str(args.nproc)] if args.nproc else []), str(old)]
        return submitted(args, params, old.tag, argv, f"a rerun of {old} at {commit[:10]}")
    seed = source["seed"] if args.f else runs.fresh_seed()
    extra = {"rerun_of": str(old), **({"init_from": source["init_from"]} if source.get("init_from") else {}),
             **slurm.job_fields()}
    if plan is not None:
        return queue.submit(plan, old.tag, commit, args.command, source["overrides"], seed, args.f and source["fixed_seed"],
                            parent=source.get("parent"), extra=extra)
    new, _ = runs.create(old.tag, commit, args.command, source["overrides"], seed, args.f and source["fixed_seed"],
                         parent=source.get("parent"), extra=extra)
    with created(new):
        print(f"runtag: {new} reruns {old} at {commit[:10]}", flush=True)
        with gitrepo.checkout_of(repo, commit) as where:
            return execute(where, new, nproc=args.nproc or per_node(source, args), args=args,
                           threads=source.get("threads") if args.f else None)  # -f: bit for bit, threads too


def per_node(record, args):
    """Processes per machine so that the run keeps its recorded world size."""
    return max(record.get("world_size", 1) // args.nnodes, 1)


def unfinished(spec):
    """The run to continue, and its record: the one named, or the newest unfinished one of the tag."""
    def newest_unfinished(found):
        read = runs.records(found)  # a damaged record is named on stderr, and skipped
        for run, record in reversed(read):
            if record and record.get("status") != "finished":
                return run
        damaged = sum(record is None for _, record in read)
        raise UserError(f"every run of {found[0].tag!r} is finished" + (f", or its record damaged ({damaged})" if damaged else ""),
                        f"`rerun {found[0].tag}` to run it again")
    return runs.one(spec, newest_unfinished)
