"""collect: `gc` (shell: expgc), the checkpoint files of ended runs removed but the best and the
last (what `rerun`, `eval` and the tables need), with what it frees.

Only runs that will not go on: finished and pruned (`--all-status`: any ended run too, those
`con` could continue). Never a live or queued run. Each run under its folder's lock: its record
first says what goes (`gc`), then the files go, so a kill -9 leaves a run whose record names a
file or two still there, which the next `gc` removes. `--dry-run` prints the same lines.
"""
from utils import checkpoints, runlock, runs
from utils.errors import UserError
from utils.housekeeping.usage import human

DONE = ("finished", "pruned")  # nothing continues these
KEEP = ("best", "last")


def add_gc(p):
    p.add_argument("specs", nargs="*", metavar="TAG[/ID]", help="the runs (default: every run)")
    p.add_argument("--keep", default="best,last", metavar="best,last",
                   help="the checkpoints kept: best, last, both (default) or none")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed; remove nothing")
    p.add_argument("--all-status", action="store_true",
                   help="failed, interrupted, killed and dead runs too (they could have been continued)")


def gc(args):
    keep = kept(args.keep)
    found = runs.resolve(args.specs) if args.specs else [run for tag in runs.tags() for run in runs.of(tag)]
    total, count = 0, 0
    for run in found:
        plan = planned(run, keep, args.all_status)
        if plan and not args.dry_run:
            plan = removed(run, keep, args.all_status)  # decided again under the run's lock
        if not plan:
            continue
        for path, size in plan:
            print(f"{'would remove' if args.dry_run else 'removed'}  {path.relative_to(run.dir.parents[1])}  {human(size)}")
        total, count = total + sum(size for _, size in plan), count + 1
    verb = "would free" if args.dry_run else "freed"
    print(f"runtag: gc: {verb} {human(total)} in {count} of {len(found)} runs (kept: {', '.join(keep) or 'none'})")
    return 0


def kept(text):
    names = [n.strip() for n in text.split(",") if n.strip() and n.strip() != "none"]
    wrong = [n for n in names if n not in KEEP]
    if wrong:
        raise UserError(f"--keep {text!r}", "give best, last, best,last or none")
    return tuple(dict.fromkeys(names))


def planned(run, keep, all_status):
    """[(path, bytes)] gc would remove of the run now; [] for a run it leaves alone."""
    return [] if runlock.locked(run.dir) else plan_of(run, keep, all_status)


def plan_of(run, keep, all_status):
    record = run.read()
    status = runs.status(record) if record else None
    if status in (None, "running", "queued", "pending") or (status not in DONE and not all_status):
        return []
    return [(path, checkpoints.size_of(path)) for path in checkpoints.removable(run.checkpoints, keep)]


def removed(run, keep, all_status):
    """Under the run's lock, as plan_of() decides again: the record, then the files; the plan
    carried out ([] if the run went live meanwhile)."""
    try:
        runlock.acquire(run.dir, str(run))
    except UserError:
        return []
    try:
        plan = plan_of(run, keep, all_status)
        if plan:
            run.write(checkpoints.noted(run.read(), [path for path, _ in plan], runs.now()))
            for path, _ in plan:
                path.unlink(missing_ok=True)
        return plan
    finally:
        runlock.release(run.dir)

