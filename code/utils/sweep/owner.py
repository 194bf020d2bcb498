"""owner: one driver per sweep, and a driver that outlives its terminal.

The driver of a tag's sweep (grid or search, every backend; Slurm's while it submits) holds an
flock on `__statistic__/sweep/<tag>.lock` from before it counts what is left until its table is
written. The kernel drops the lock when the driver ends, however it ends (kill -9 included), so
it is never stale. The file names the holder, `pid host`, for the line a second driver gets.
"""
import fcntl
import os
import signal
import socket
import sys
from contextlib import contextmanager

from utils import log, paths
from utils.errors import UserError


def path(tag):
    return paths.statistic() / "sweep" / f"{tag}.lock"


@contextmanager
def owned(tag, wait=False):
    """The sweep of `tag` is ours inside the block; else a UserError naming its driver, or with
    `wait`, we wait for that driver to end. Yields True if we waited (things may have changed)."""
    lock = path(tag)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        waited = take(fd, tag, wait)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError as err:  # a full disk: the one line names the file (errors.environment)
            err.filename = str(lock)
            raise
        yield waited
    finally:
        try:
            os.ftruncate(fd, 0)  # ours no more: the next reader names no one
        except OSError:
            pass
        os.close(fd)


def take(fd, tag, wait):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        pass
    who = holder(fd)
    if not wait:
        raise UserError(f"sweep {tag} is being driven right now by {who}",
                        "let it end (repeat the command then), add --wait to start when it has ended, "
                        "or stop it (Ctrl-C there)")
    print(f"runtag: sweep {tag} is being driven by {who}; waiting for it to end (--wait)", flush=True)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a Ctrl-C here is KeyboardInterrupt: nothing was written
    return True


def holder(fd):
    """`pid N on HOST` as the lock file says; its holder may not have written it yet."""
    try:
        pid, host = os.pread(fd, 300, 0).decode(errors="replace").split()[:2]
        return f"pid {pid} on {host}"
    except (OSError, ValueError):
        return "another process"


def outlive_terminal():
    """Like a run, the driver goes on when its terminal closes: SIGHUP ignored (the runs it starts
    inherit that), and its output (START/DONE lines, the bar, the table) goes quiet at the first
    write that fails (EIO, EPIPE) instead of killing it. For the rest of the command."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if not isinstance(sys.stdout, log.Echo):
        sys.stdout = Quiet(sys.stdout)
    if not isinstance(sys.stderr, log.Echo):
        sys.stderr = Quiet(sys.stderr)


class Quiet(log.Echo):
    """The run's quiet echo (utils/log.py), with its stream's encoding: tqdm draws in Unicode then."""

    @property
    def encoding(self):
        return getattr(self.stream, "encoding", None) or "utf-8"
