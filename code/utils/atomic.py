"""Writes that must never be seen half-done: temporary file, fsync, rename."""
import fcntl
import json
import math
import os
from pathlib import Path


class writing:  # noqa: N801 -- a class, not @contextmanager: contextlib is 1.2 ms of a listing's start
    """A binary file to write `path` through: it appears whole at the end of the block (temporary
    file in the same folder, fsync, rename), or not at all. Writers stream into it: a checkpoint
    of gigabytes needs no copy of itself in memory."""

    def __init__(self, path):
        self.staged = Staged(path)

    def __enter__(self):
        return self.staged.file

    def __exit__(self, kind, err, tb):
        if err is None:
            self.staged.commit()
        else:
            self.staged.fail(err)


class Staged:
    """A file whose bytes are written now into a temporary beside `path`, and made durable and
    visible later by commit() (fsync, rename), possibly on another thread: a training loop waits
    for the bytes, not for the disk. Never committed (discard(), a kill), it is never seen.
    `with Staged(path) as staged:` writes into staged.file; an error in the block discards it."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            fd, self.tmp = new_file(self.path.parent, f".{self.path.name}.")
        except OSError as err:
            err.filename = str(self.path)  # not the temporary's random name: the file the user knows
            raise
        os.fchmod(fd, 0o644)  # readable by the group, whatever the umask
        self.file = os.fdopen(fd, "wb")

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is not None:
            self.fail(err)

    def commit(self):
        try:
            with self.file as f:
                f.flush()
                os.fsync(f.fileno())
            os.replace(self.tmp, self.path)
        except BaseException as err:
            self.fail(err)
            raise

    def fail(self, err):
        """Nothing of it left, and `err` names the file the user knows."""
        self.discard()
        self.name(err)

    def name(self, err):
        """A failed write() names no file, or the temporary: name the file the user knows
        ("no space ... while writing <path>")."""
        if isinstance(err, OSError) and err.filename in (None, self.tmp):
            err.filename, err.filename2 = str(self.path), None

    def discard(self):
        try:
            self.file.close()
        except OSError:
            pass  # its buffered bytes go nowhere: the file is removed
        Path(self.tmp).unlink(missing_ok=True)


def write_bytes(path, data):
    with writing(path) as f:
        f.write(data)


def write_text(path, text):
    write_bytes(path, text.encode())


def write_json(path, obj):
    write_text(path, json_text(obj))


def json_text(obj):
    """Strict JSON, indented: a diverged run's NaN or infinity becomes the string "nan", "inf" or
    "-inf" (bare NaN is not JSON; pandas still reads these strings as numbers)."""
    return json.dumps(finite(obj), indent=2, allow_nan=False) + "\n"


def finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def new_file(folder, prefix):
    """(descriptor, path) of a new file in `folder` that nobody else opened: tempfile.mkstemp's
    O_EXCL and random name, without importing tempfile (shutil, random, bz2, lzma: a fifth of a
    listing's start, and `record` writes through this module)."""
    while True:
        path = os.path.join(folder, f"{prefix}{os.urandom(6).hex()}.tmp")
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path
        except FileExistsError:
            continue


def check_writable(*folders):
    """Raise the OSError a write into each existing folder would meet (read-only, forbidden),
    naming the folder, before a command starts what would fail half-way."""
    for folder in filter(os.path.isdir, folders):
        try:
            fd, probe = new_file(folder, ".runtag-probe.")
        except OSError as err:
            err.filename = str(folder)
            raise
        os.close(fd)
        os.unlink(probe)


class locked:  # noqa: N801 -- a class: see writing
    """An exclusive lock on a directory, so read-modify-write of its files is not lost to a race."""

    def __init__(self, directory):
        self.directory = directory

    def __enter__(self):
        self.fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, kind, err, tb):
        os.close(self.fd)


def append_lines(path, lines):
    """Add lines not yet in the file, keeping its order; atomic and safe against concurrent writers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.parent):
        old = path.read_text().splitlines() if path.exists() else []
        present = set(old)  # once: a set per line made appending n lines to a list of n quadratic
        new = [line for line in dict.fromkeys(lines) if line not in present]
        if new:
            write_text(path, "\n".join(old + new) + "\n")
    return new
