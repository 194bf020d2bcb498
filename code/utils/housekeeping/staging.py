"""Runs brought in whole (unarchive, import): the staging area __result__/.import-tmp/, and the
move of a staged run into place under a free id (what a run folder carries: carried.py).

A run is staged complete (every file fsynced) in the staging area, its record rewritten there,
then renamed into __result__/<tag>/<id> in one rename(2): a kill leaves it whole or absent. The
area is hidden (listings skip names with a dot) and held by one command at a time (an flock the
kernel drops with its holder), which removes what a killed command left before it stages.
"""
import ctypes
import errno
import fcntl
import os
import shutil
from contextlib import contextmanager

from utils import atomic, paths, runs
from utils.errors import UserError

AREA = ".import-tmp"


@contextmanager
def area():
    """The staging folder, held by this command alone and emptied of what a killed one left."""
    base = paths.results() / AREA
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another import or unarchive is bringing runs into {paths.results()}",
                            "wait for it to end, then run the command again") from None
        clear(base)  # we hold the lock: nothing in it belongs to a live command
        try:
            yield base
        finally:
            clear(base)
    finally:
        os.close(fd)


def clear(base):
    for left in base.iterdir():
        shutil.rmtree(left, ignore_errors=True)


def stage(base):
    """A new empty folder in the staging area."""
    fd, path = atomic.new_file(base, "run.")
    os.close(fd)
    os.unlink(path)
    os.mkdir(path)
    return path


def durable(folder):
    """fsync every file and folder under `folder`: on disk before the rename makes it a run."""
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                sync(path)
        sync(dirpath)


def sync(path):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def origin(record):
    """(name, host) where a run was first made: an imported run's imported_from, else its own."""
    came = record.get("imported_from")
    if isinstance(came, dict) and isinstance(came.get("name"), str):
        return came["name"], came.get("host")
    return str(runs.Run.of(record)), record.get("host")


def identity(record):
    """What makes two records one run: where it was first made, and when it started."""
    return (*origin(record), record.get("start"))


class Arrivals:
    """The runs already here, by identity, per tag (read once), and the moves into place."""

    def __init__(self):
        self.known, self.brought, self.seen, self.skipped = {}, [], [], 0

    def bring(self, folder, record, came_from, always):
        """place() the staged run unless it is here already; one line says which."""
        name, host = str(runs.Run.of(record)), record.get("host")
        of = f" of {host}" if host else ""
        self.seen.append(record)
        here = self.here(record)
        if here is not None:
            self.skipped += 1
            print(f"{name}{of}: already here as {here}, skipped", flush=True)
            return None
        run = self.place(folder, record, came_from, always)
        self.brought.append((run, record))
        print(f"{name}{of} -> {run}", flush=True)
        return run

    def told(self, verb):
        print(f"runtag: {verb} {len(self.brought)} run{'s' * (len(self.brought) != 1)}"
              + (f", {self.skipped} already here" if self.skipped else ""))

    def here(self, record):
        """The run here that is this record's run, or None."""
        tag = record["tag"]
        if tag not in self.known:
            self.known[tag] = {identity(r): run for run, r in runs.records(runs.of(tag), quiet=True) if r}
        return self.known[tag].get(identity(record))

    def place(self, folder, record, came_from, always):
        """Move a staged run into __result__/<tag>/: its own id when free, else the tag's next free
        one. Its record gains `imported_from` (`always`, or when renumbered) and its new id,
        rewritten atomically before the rename. The Run it became."""
        tag, own = record["tag"], record["id"]
        base = paths.results() / tag
        base.mkdir(exist_ok=True)
        for new in ids(tag, own):
            if always or new != own:
                first = record.get("imported_from") or {"name": str(runs.Run.of(record)), "host": record.get("host"), **came_from}
                atomic.write_bytes(os.path.join(folder, runs.RECORD), runs.encode({**record, "id": new, "imported_from": first}))
            durable(folder)
            if rename_new(folder, base / str(new)):
                sync(base)
                run = runs.Run(tag, new)
                self.here(record)
                self.known[tag][identity(record)] = run
                return run


def ids(tag, own):
    """The ids to try, in order: the run's own, then the tag's next free ones."""
    yield own
    n = len(runs.ids(tag))
    while True:
        yield n
        n += 1


LIBC = ctypes.CDLL(None, use_errno=True)
NOREPLACE = 1  # renameat2's RENAME_NOREPLACE (Linux 3.15): the check and the rename in one call
AT_FDCWD = -100


def rename_new(src, dst):
    """Rename a folder to a name nobody holds; False if someone does (a run made meanwhile)."""
    if hasattr(LIBC, "renameat2"):
        if LIBC.renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), NOREPLACE) == 0:
            return True
        err = ctypes.get_errno()
        if err in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        if err not in (errno.EINVAL, errno.ENOSYS):  # a file system without it: the plain rename below
            raise OSError(err, os.strerror(err), str(dst))
    if os.path.lexists(dst):
        return False
    os.rename(src, dst)
    return True
