"""usage: `du` (shell: expdu), the disk use of runs: per run, per tag or per kind of file
(checkpoints, TensorBoard, log, other), largest first, with totals.

One pass over the folders with os.scandir and the stat it returns; no file is opened, no record
read, so 10,000 runs cost what `du -s` costs (code/bench/bench_du.py). Sizes are the files'
bytes (`du --apparent-size -b`); a symlink counts nothing (its target is counted where it lies).
"""
import os

from utils import paths, runs

KINDS = ("checkpoints", "tensorboard", "log", "other")
KIND_OF = {runs.CHECKPOINTS: "checkpoints", runs.TENSORBOARD: "tensorboard", runs.LOG: "log"}


def add_du(p):
    p.add_argument("specs", nargs="*", metavar="TAG[/ID]", help="the runs to measure (default: every run)")
    p.add_argument("--by", choices=("run", "tag", "kind"), default="run", help="one line per run (default), tag or kind")
    p.add_argument("--bytes", action="store_true", help="exact bytes, not KiB/MiB/GiB")


def du(args):
    found = [(run, str(run.dir)) for run in runs.resolve(args.specs)] if args.specs else every_run()
    sizes = [(run, measure(folder)) for run, folder in found]
    show = (lambda n: str(n)) if args.bytes else human
    rows = lines(args.by, sizes)
    total = {kind: sum(size[kind] for _, size in sizes) for kind in KINDS}
    table = [("SIZE", *(k.upper() for k in KINDS), args.by.upper())]
    table += [(show(sum(size.values())), *(show(size[k]) for k in KINDS), name) for name, size in rows]
    table.append((show(sum(total.values())), *(show(total[k]) for k in KINDS), f"total ({len(found)} runs)"))
    trash = paths.results() / ".trash"
    if trash.is_dir():
        table.append((show(tree(trash)), "", "", "", "", "in __result__/.trash (`rm --purge` empties it)"))
    print("\n".join("  ".join(c.rjust(10) for c in row[:-1]) + "  " + row[-1] for row in table))


def lines(by, sizes):
    """[(name, {kind: bytes})], largest first: one per run, per tag, or per kind."""
    if by == "kind":
        return sorted(((kind, {k: sum(s[k] for _, s in sizes) if k == kind else 0 for k in KINDS}) for kind in KINDS),
                      key=lambda row: -sum(row[1].values()))
    grouped = {}
    for run, size in sizes:
        name = run.tag if by == "tag" else str(run)
        into = grouped.setdefault(name, dict.fromkeys(KINDS, 0))
        for kind in KINDS:
            into[kind] += size[kind]
    return sorted(grouped.items(), key=lambda row: -sum(row[1].values()))


def every_run():
    """[(Run, its folder)] of every run, from one scandir of __result__ and one of each tag's folder
    (what runs.tags() and runs.of() would find, without a Path per run)."""
    found = []
    for tag in runs.tags():
        base = f"{paths.results()}/{tag}"
        try:
            with os.scandir(base) as entries:
                ids = sorted(int(e.name) for e in entries if runs.is_id(e.name) and is_dir(e))
        except OSError:
            continue
        found += [(runs.Run(tag, id), f"{base}/{id}") for id in ids]
    return found


def measure(folder):
    """{kind: bytes} of one run folder: its checkpoint/ and tensorboard/ trees, its log, the rest."""
    size = dict.fromkeys(KINDS, 0)
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                size[KIND_OF.get(entry.name, "other")] += bytes_of(entry)
    except OSError:
        pass  # removed meanwhile, or unreadable: nothing more to count
    return size


def tree(path):
    """The bytes of the files under a folder, links not followed."""
    try:
        with os.scandir(path) as entries:
            return sum(map(bytes_of, entries))
    except OSError:
        return 0


def bytes_of(entry):
    """A directory entry's bytes: a folder's files, a file's own, a link's none (d_type says which
    is which: a stat only for each file)."""
    try:
        if entry.is_dir(follow_symlinks=False):
            return tree(entry.path)
        return entry.stat(follow_symlinks=False).st_size if entry.is_file(follow_symlinks=False) else 0
    except OSError:
        return 0  # gone meanwhile


def is_dir(entry):
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
