"""What a run folder carries to another clone (archive, import): its record, log, TensorBoard
events, other files and the checkpoints asked for, links kept as links; never the lock, hidden
tooling files (`.reserve`, a killed write's temporaries) or links that lead out of the run.
"""
import os
import shutil

from utils import runlock, runs

SKIPPED = {runlock.NAME, runs.RESERVE}  # tooling files of a live run, meaningless elsewhere


def contents(folder, checkpoints="all"):
    """What a run folder carries, as sorted relative paths (folders before what they hold): all
    but the lock, hidden files (`.reserve`, a killed write's temporaries) and links that lead out
    of the run (slurm.out); of checkpoint/ every file, only the best (and its link), or nothing."""
    found = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith(".") or entry.name in SKIPPED:
            continue
        if entry.name == runs.CHECKPOINTS and entry.is_dir(follow_symlinks=False):
            found += chosen(entry.path, checkpoints)
        else:
            found += walk(entry, "")
    return found


def walk(entry, prefix):
    """entry's relative path, and everything under it when it is a folder (links not followed)."""
    path = prefix + entry.name
    if entry.is_symlink():
        return [path] if inside(path, os.readlink(entry.path)) else []
    if entry.is_dir():
        below = sorted(os.scandir(entry.path), key=lambda e: e.name)
        return [path] + [p for e in below if not e.name.startswith(".") for p in walk(e, path + "/")]
    return [path] if entry.is_file() else []


def chosen(folder, which):
    """checkpoint/ and the files of it an archive keeps: `all`, `best` (the link and its file), `none`."""
    if which == "none":
        return []
    base = runs.CHECKPOINTS + "/"
    if which == "all":
        return [base[:-1]] + [p for e in sorted(os.scandir(folder), key=lambda e: e.name)
                              if not e.name.startswith(".") for p in walk(e, base)]
    best = os.path.join(folder, runs.BEST)
    if not os.path.islink(best) or "/" in os.readlink(best) or not os.path.isfile(best):
        return [base[:-1]]
    return [base[:-1], base + os.readlink(best), base + runs.BEST]


def inside(path, target):
    """Whether a link at `path` (relative to the run folder) points inside the run folder."""
    return not os.path.isabs(target) and not os.path.normpath(os.path.join(os.path.dirname(path), target)).startswith("..")


def copy(source, dest, which="all"):
    """A run folder's contents into `dest`, links as links, times kept (a folder's after what went in)."""
    listed = contents(source, which)
    for rel in listed:
        src, dst = os.path.join(source, rel), os.path.join(dest, rel)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isdir(src):
            os.mkdir(dst)
        else:
            shutil.copy2(src, dst)
    for rel in reversed(listed):
        src = os.path.join(source, rel)
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copystat(src, os.path.join(dest, rel))
