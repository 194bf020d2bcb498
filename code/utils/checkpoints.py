"""A run's checkpoint/ folder: the files' names, writing one, the links, pruning, and loading
with a reason in a few words when a file does not load. torch is imported only to write or load
a file: the CLI reads the names (`expels`, `con`) without it.

`epoch_<n>.pth` holds the state after epoch n; `epoch_<n>_step_<k>.pth` the state k optimizer
steps into epoch n. `epoch_last.pth` links to the newest file, `epoch_best.pth` to the best
epoch's. Every file is written whole or not at all (utils/atomic.py).
"""
import os
import re
from pathlib import Path

from utils.runs import BEST, LAST

STATE_KEYS = {"epoch", "ranks"}  # what every training state holds (utils/checkpointing.py)
FILE = re.compile(r"epoch_(\d+)(?:_step_(\d+))?\.pth")


def name(epoch, step=0):
    """The file of the state after `epoch` finished epochs and `step` steps into the next."""
    return f"epoch_{epoch + 1}_step_{step}.pth" if step else f"epoch_{epoch}.pth"


def position(file_name):
    """(finished epochs, steps into the next) of a checkpoint's file name, or None."""
    m = FILE.fullmatch(file_name)
    if not m:
        return None
    return (int(m[1]) - 1, int(m[2])) if m[2] else (int(m[1]), 0)


def write(directory, tree):
    """torch.save straight into the file (no copy of it in memory); its name."""
    file, staged = stage(directory, tree)
    staged.commit()
    return file


def stage(directory, tree):
    """torch.save into the file's temporary: (its name, the atomic.Staged to commit)."""
    import torch
    from utils import atomic  # here: a listing that names checkpoints writes none
    file = name(tree["epoch"], tree.get("step", 0))
    with atomic.Staged(directory / file) as staged:
        torch.save(tree, staged.file)
    return file, staged


def point(link, target):
    """Replace a relative symlink atomically: the link is never missing."""
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def prune(directory, keep):
    """Remove old checkpoint files beyond `keep`; what last and best point at always stays."""
    if keep <= 0:
        return
    for p in unpinned(directory)[keep:]:
        p.unlink()


def unpinned(directory, keep=(LAST, BEST)):
    """The checkpoint files that none of the links `keep` points at, newest first."""
    pinned = {os.readlink(directory / n) for n in keep if (directory / n).is_symlink()}
    return [p for p in files(directory) if p.name not in pinned]


def removable(directory, keep=("best", "last"), others=0):
    """What `gc` (or keep_checkpoints_done at a run's end) removes: every file but those the kept
    links name and the `others` newest besides, the links then naming nothing, killed writes'
    temporaries. Only for a folder no process writes (the run's lock held or ended)."""
    gone = unpinned(directory, [{"best": BEST, "last": LAST}[k] for k in keep])[others:]
    names = {p.name for p in gone}
    dangling = [directory / n for n in (LAST, BEST) if (directory / n).is_symlink()
                and os.readlink(directory / n) in names]
    return gone + dangling + sorted(directory.glob(".*.tmp"))


def noted(record, plan, when):
    """The record with its `gc` field after removing `plan` (removable()'s paths): every checkpoint
    file gc ever removed, the bytes freed, the last time; `con` and `eval` name it when a file they
    want is gone. Written before the files go, so a kill leaves no file gone that it does not name."""
    names = [p.name for p in plan if not p.is_symlink() and position(p.name)]
    done = record.get("gc") if isinstance(record.get("gc"), dict) else {}
    record["gc"] = {"removed": sorted(set(done.get("removed") or []) | set(names)),
                    "freed_bytes": int(done.get("freed_bytes") or 0) + sum(map(size_of, plan)), "at": when}
    return record


def size_of(path):
    """A file's bytes; a link's, or a file gone meanwhile, none."""
    try:
        return 0 if path.is_symlink() else path.stat().st_size
    except OSError:
        return 0


def removed_said(record):
    """` (`gc` removed 3 of its checkpoint files on 2026-...)`, or "" if gc never did."""
    done = (record or {}).get("gc")
    if not isinstance(done, dict):
        return ""
    return f" (`gc` removed {len(done.get('removed') or [])} of its checkpoint files on {done.get('at', '?')})"


def files(directory):
    """The folder's checkpoint files, newest position first."""
    if not directory.is_dir():
        return []
    found = [(pos, p) for p in directory.iterdir() if (pos := position(p.name))]
    return [p for _, p in sorted(found, key=lambda f: f[0], reverse=True)]


def newest(directory):
    """Where the run would go on from, as expels shows it: `4` after epoch 4, `4+2` two optimizer
    steps into epoch 5 (what epoch_last names); None without it."""
    try:
        found = position(os.readlink(directory / LAST))
    except OSError:
        return None
    return found and (f"{found[0]}+{found[1]}" if found[1] else str(found[0]))


def candidates(directory):
    """Where a continued run may go on from, in order: the file epoch_last names (the last write's
    own word), then every checkpoint file, newest first."""
    last = directory / LAST
    named = [directory / os.readlink(last)] if last.is_symlink() else []
    return list(dict.fromkeys(named + files(directory)))


def remove_temporaries(directory):
    """Remove what killed writes left: `.epoch_<n>.pth.*.tmp` (atomic.writing) and
    `.epoch_last.pth.tmp` (point()). No link names them, and none belongs to a live write: one
    process owns a run folder (its lock), and this one writes only after every rank resumed."""
    for tmp in directory.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


class Unloadable(Exception):
    """A checkpoint that does not load: `path`, and `why` in a few words."""

    def __init__(self, path, why):
        super().__init__(Path(path), why)
        self.path, self.why = Path(path), why

    def __str__(self):
        return f"{self.path.parent.name}/{self.path.name} ({self.why})"


def listing(errors, most=3):
    """`checkpoint/epoch_7.pth (truncated), ...`: the skipped files in one line."""
    named = ", ".join(map(str, errors[:most]))
    return named + (f" and {len(errors) - most} more" if len(errors) > most else "")


def loaded(path, keys):
    """A checkpoint that loads and holds `keys`, or Unloadable."""
    ckpt = load(path)
    if not isinstance(ckpt, dict) or not keys <= ckpt.keys():
        raise Unloadable(path, "not a training state")
    return ckpt


def load(path, map_location="cpu"):
    """A checkpoint's contents, or Unloadable saying why not. weights_only: a checkpoint is data,
    not code (the state holds only tensors and plain types), so one that carries code is refused,
    and torch's advice to load it with weights_only=False is not passed on. mmap: tensors are read
    from the file as they are used (copy-on-write), so loading a state of gigabytes does not first
    read all of it into memory beside the live one."""
    import torch
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 -- anything else torch.load raises is the file's fault
        raise Unloadable(path, why_unloadable(path, err)) from None


def resume_point(directory, world_size=1):
    """Where a continued run goes on from: (checkpoint, skipped), the newest checkpoint in
    `directory` that loads and the newer ones that do not (Unloadable), tried in the order of
    candidates(). A checkpoint from inside an epoch needs as many processes as wrote
    it. None loads: Unloadable for the folder, listing them, and nothing changed in it."""
    skipped = []
    for path in candidates(directory):
        try:
            ckpt = loaded(path, STATE_KEYS)
            if ckpt.get("step") and len(ckpt["ranks"]) != world_size:
                raise Unloadable(path, f"inside an epoch, by {len(ckpt['ranks'])} processes,"
                                             f" not {world_size}")
        except Unloadable as err:
            skipped.append(err)
            continue
        remove_temporaries(directory)  # the run goes on, and will write here
        return ckpt, skipped
    raise Unloadable(directory, listing(skipped) or "no epoch file")


def best_checkpoint(directory, epoch, step=0):
    """The best evaluation's state for the test: (path, checkpoint) from epoch_best.pth, else from
    its own file, each only if it holds that evaluation, or None; and the files skipped."""
    best, own = directory / BEST, directory / name(epoch, step)
    skipped = []
    for path in [best] + ([own] if own.resolve() != best.resolve() else []):
        try:
            ckpt = loaded(path, STATE_KEYS)
        except Unloadable as err:
            skipped.append(err)
            continue
        if (ckpt["epoch"], ckpt.get("step", 0)) == (epoch, step):
            return (path, ckpt), skipped
        skipped.append(Unloadable(path, f"holds {name(ckpt['epoch'], ckpt.get('step', 0))},"
                                                    f" not the best {name(epoch, step)}"))
    return None, skipped


def why_unloadable(path, err):
    """A few words on a checkpoint that does not load."""
    if isinstance(err, FileNotFoundError):
        return "missing"
    if isinstance(err, OSError):
        return err.strerror or str(err)
    code = re.search(r"GLOBAL ([\w.]+)", str(err))
    if code:  # weights_only's refusal of a pickled function or class
        return f"carries code: {code[1]}, refused"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as gone:
        return gone.strerror or str(gone)
    if not head:
        return "empty"
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        return "not a PyTorch checkpoint"
    if "central directory" in str(err):  # a zip's index is at its end
        return "truncated"
    return f"damaged: {str(err).splitlines()[0][:120]}"
