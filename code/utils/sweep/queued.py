"""queued: `sweep --queue`, each combination left made a queued run at once, as `run --queue`
makes it (utils/runqueue/), and the command returns; the queue's waiter starts them as slots free
up, on the tagged commit. A combination whose run waits or runs is under way (sweep/resume.py),
so neither a second `sweep --queue` nor a plain `sweep` runs it twice; a plain `sweep` of the tag
once they ended builds the table."""
import argparse

from utils import launch, overrides
from utils.errors import UserError

UNDER_WAY = ("queued", "running")


def check(args, search):
    """--queue's flags, before anything is made: a grid, on this machine's queue."""
    if not args.queue:
        if args.gpu_free_mb is not None:
            raise UserError("--gpu-free-mb without --queue", "add --queue, or leave --gpu-free-mb out")
        return
    if search:
        raise UserError(f"--queue with {args.file}, a search", "a search asks each trial once others ended: "
                        "run it without --queue (it outlives its terminal)")
    if args.backend != "local":
        raise UserError(f"--queue with --backend {args.backend}", "--queue is this machine's queue: leave --backend out")
    if args.gpu_free_mb is not None and not args.gpus:
        raise UserError("--gpu-free-mb without --gpus", "name the GPUs, e.g. --gpus 0,1 --gpu-free-mb 2000")


def submit(args, jobs):
    """Each job a queued run (`run --queue`, or `continue --queue` of an interrupted one), in order."""
    verbs = {"continue": (parser("continue", launch.add_con), launch.con),
             "run": (parser("run", launch.add_run), launch.run)}
    for job in jobs:
        verb, argv = ("continue", [job.name]) if job.resume else \
            ("run", [*(["-f"] if args.f else []), args.tag, *overrides.words(job.overrides)])
        argv = ["--queue", *slot_flags(args), *argv]
        made, start = verbs[verb]
        parsed = made.parse_intermixed_args(argv)
        parsed.command = " ".join([verb, *argv])  # recorded, as the command line would be
        start(parsed)
    print(f"runtag: sweep {args.tag}: {len(jobs)} runs queued; `queue` lists them, and `sweep {args.tag} "
          f"{args.file}` once they ended builds its table", flush=True)
    return 0


def parser(verb, add):
    made = argparse.ArgumentParser(prog=verb)
    add(made)
    return made


def slot_flags(args):
    if args.gpus:
        return ["--gpus", args.gpus, *(["--per-gpu", str(args.per_gpu)] if args.per_gpu else []),
                *(["--gpu-free-mb", str(args.gpu_free_mb)] if args.gpu_free_mb is not None else [])]
    return ["--workers", str(args.workers or 1)]
