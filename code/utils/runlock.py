"""One writer per run folder: whoever runs it holds an flock on `<run>/lock` for the run's whole life.

An flock, not a pid in a file: the kernel drops it when the last process holding it ends, however
it ends (SIGKILL, a power cut), so a lock on this host is never stale and never lies. The CLI takes
it before anything starts, and the run's processes inherit it: it lasts as long as any of them.
The file itself stays empty; the record (statistic.json) says which pid and host run the folder.
"""
import fcntl
import os
from pathlib import Path

from utils.errors import UserError

NAME = "lock"
HELD = {}  # run folder -> descriptor this process locked it with


def acquire(run_dir, name, pid=None):
    """Lock the run folder for this process and its children, or say who holds it (a UserError)."""
    run_dir = Path(run_dir).resolve()
    if run_dir in HELD:
        return HELD[run_dir]
    fd = os.open(run_dir / NAME, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        who = f"pid {pid}" if pid else f"a process holds its {NAME} file"
        raise UserError(f"{name} is running right now on this host ({who})",
                        "wait for it, or stop it (Ctrl-C, kill PID): one run folder, one process, whatever the flags") from None
    HELD[run_dir] = fd
    return fd


def release(run_dir):
    """Let go of a lock this process took (a verb that amends a record, then goes on)."""
    fd = HELD.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        os.close(fd)


def locked(run_dir):
    """True while some process holds the run folder's lock (on this host)."""
    try:
        fd = os.open(Path(run_dir) / NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
