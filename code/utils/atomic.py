"""Writes that must never be seen half-done: temporary file, fsync, rename."""
import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def write_bytes(path, data):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from the rest of the group
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path, text):
    write_bytes(path, text.encode())


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2) + "\n")


@contextmanager
def locked(directory):
    """An exclusive lock on a directory, so read-modify-write of its files is not lost to a race."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def append_lines(path, lines):
    """Add lines not yet in the file, keeping its order; atomic and safe against concurrent writers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.parent):
        old = path.read_text().splitlines() if path.exists() else []
        new = [line for line in dict.fromkeys(lines) if line not in set(old)]
        if new:
            write_text(path, "\n".join(old + new) + "\n")
    return new
