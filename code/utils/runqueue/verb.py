"""`run --queue` (and `rerun --queue`): the run made now, status `queued`, started later by the
waiter (waiter.py) when a slot is free; `queue`: what waits and where, `queue rm RUN` takes one out."""
import argparse

from utils import runs
from utils.errors import UserError
from utils.runqueue import slots

WAITS = ("running", "queued", "pending")  # a run named by --after that has not ended yet


def add_options(p):
    p.add_argument("--queue", action="store_true", help="make the run now, start it when a slot is free (docs/queue.md)")
    p.add_argument("--workers", type=whole, metavar="N", help="with --queue: N CPU slots (default 1)")
    p.add_argument("--gpus", type=gpu_list, metavar="0,1", help="with --queue: a slot per GPU (CUDA_VISIBLE_DEVICES)")
    p.add_argument("--per-gpu", type=whole, default=None, metavar="K", help="with --gpus: K runs on each GPU at once")
    p.add_argument("--gpu-free-mb", type=whole, metavar="MB",
                   help="with --gpus: a GPU counts as free only while it uses less memory (nvidia-ml-py)")
    p.add_argument("--after", action="append", default=None, metavar="RUNS",
                   help="with --queue: start once these runs ended (TAG/ID or TAG, comma-separated or repeated)")
    p.add_argument("--after-ok", action="store_true", help="with --after: only if they finished, else cancel this run")


def whole(text):
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def gpu_list(text):
    gpus = [g.strip() for g in text.split(",")]
    if not gpus or not all(g.isascii() and g.isdigit() for g in gpus):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of GPU numbers like 0,1")
    return list(dict.fromkeys(gpus))


def check(args):
    """The queue's flags, checked before anything is made: the slot set and the runs waited for
    (resolved to names now: `--after tag` waits for the runs the tag has today), or None without --queue."""
    if not args.queue:
        if args.slurm:
            return None  # --after with --slurm is Slurm's own dependency (utils/dependency.py)
        given = [f for f in ("workers", "gpus", "per_gpu", "gpu_free_mb", "after") if getattr(args, f) is not None]
        if given or args.after_ok:
            flag = "--" + (given[0] if given else "after_ok").replace("_", "-")
            raise UserError(f"{flag} without --queue", f"add --queue, or leave {flag} out")
        return None
    if args.slurm:
        raise UserError("--queue with --slurm", "Slurm queues the job itself: leave --queue out")
    if args.nnodes > 1:
        raise UserError("--queue with --nnodes > 1", "queue single-machine runs only")
    if args.workers and args.gpus:
        raise UserError("--workers with --gpus", "choose CPU workers or GPU slots")
    if args.per_gpu and not args.gpus:
        raise UserError("--per-gpu without --gpus", "name the GPUs, e.g. --gpus 0,1 --per-gpu 2")
    if args.gpu_free_mb and not args.gpus:
        raise UserError("--gpu-free-mb without --gpus", "name the GPUs, e.g. --gpus 0,1 --gpu-free-mb 2000")
    if args.after_ok and not args.after:
        raise UserError("--after-ok without --after", "name the runs to wait for: --after TAG/ID --after-ok")
    named = [spec for given in args.after or [] for spec in given.split(",") if spec]
    after = [str(run) for run in runs.resolve(named)]
    return {"slots": slots.names(args.workers, args.gpus, args.per_gpu or 1), "after": after,
            "after_ok": args.after_ok, "nproc": args.nproc, "gpu_free_mb": args.gpu_free_mb}


def submit(plan, tag, commit, command, changes, seed, fixed, parent=None, extra=None):
    """The run, made now with status `queued`, on the waiting list; a waiter started. Returns 0."""
    from utils import runlock
    from utils.runqueue import waiter
    sequence = slots.next_sequence()
    queue = {"submitted": runs.now(), "sequence": sequence, **plan}
    new, record = runs.create(tag, commit, command, changes, seed, fixed, parent=parent,
                              extra={**(extra or {}), "queue": queue})
    record.update(status="queued", pid=None, start=None)
    new.write(record)
    slots.add(sequence, new)
    runlock.release(new.dir)  # the run's lock is for whoever runs it
    after = f" after {', '.join(plan['after'])}" if plan["after"] else ""
    print(f"runtag: {new} queued at {commit[:10]} on {slots.shown(plan['slots'])}{after} {changes or ''}", flush=True)
    waiter.spawn()
    return 0


def resubmit(plan, run, nproc):
    """`con --queue`: the run (locked by con, checked continuable) queued again to go on from its
    checkpoint; `resume` tells the waiter's child to continue it rather than start it."""
    from utils import runlock
    from utils.runqueue import waiter
    record = run.read()
    sequence = slots.next_sequence()
    record.update(status="queued", queue={"submitted": runs.now(), "sequence": sequence, **plan,
                                          "nproc": plan["nproc"] or nproc, "resume": True, "was": record["status"]})
    run.write(record)
    slots.add(sequence, run)
    runlock.release(run.dir)
    print(f"runtag: {run} queued to continue on {slots.shown(plan['slots'])}", flush=True)
    waiter.spawn()
    return 0


def add_queue(p):
    p.add_argument("action", nargs="?", choices=["rm"], help="rm: take the runs named out of the queue (cancelled)")
    p.add_argument("specs", nargs="*", metavar="TAG/ID", help="with rm: the waiting runs to take out")
    p.add_argument("--wait", action="store_true", help=argparse.SUPPRESS)  # the waiter itself (waiter.py)
    p.add_argument("--start", metavar="TAG/ID", help=argparse.SUPPRESS)  # one run, started by the waiter
    p.add_argument("--slot", help=argparse.SUPPRESS)


def queue(args):
    from utils.runqueue import waiter
    if args.wait:
        return waiter.loop()
    if args.start:
        return waiter.start(args.start, args.slot)
    if args.action == "rm":
        if not args.specs:
            raise UserError("queue rm without a run", "name the waiting runs: `queue rm TAG/ID`")
        return remove(args.specs)
        return 0
    if args.specs:
        raise UserError(f"unknown queue action {args.specs[0]!r}", "`queue` lists, `queue rm TAG/ID` takes a run out")
    text, queued = listing()
    print(text)
    if queued:
        waiter.spawn()  # after a reboot or a killed waiter: what waits starts again
    return 0


def remove(specs):
    """`queue rm`: the runs named, each waiting (checked before any is cancelled); of a tag, its waiting runs."""
    from utils.runqueue import waiter
    named = runs.resolve(specs)
    waits = {run for run, record in runs.records(named, quiet=True) if (record or {}).get("status") == "queued"}
    for spec in specs:
        if "/" in spec and not waits & set(runs.resolve([spec])) or not waits:
            raise UserError(f"{spec} is not waiting in the queue", "see `queue` for the runs that wait")
    for run in named:
        if run in waits:
            waiter.cancel(run)
    return 0


def listing():
    """One line per queued run (position, slots, what it waits for), and the queue's running runs;
    and how many wait."""
    from utils.listing import columns
    rows, position = [("RUN", "WHERE", "SLOTS", "AFTER")], 0
    for _, name in slots.waiting():
        run = runs.Run.parse(name)
        record = run.read() or {}
        status, queue = runs.status(record) if record else "damaged", record.get("queue") or {}
        if status == "queued":
            position += 1
            rows.append((run, f"waits #{position}", slots.shown(queue.get("slots", [])), ", ".join(queue.get("after", [])) or "-"))
        elif status == "running":
            rows.append((run, "running", queue.get("slot", "-"), "-"))
    return (columns(rows) if len(rows) > 1 else "runtag: nothing waits in the queue"), position
