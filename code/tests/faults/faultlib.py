"""What every fault scenario shares: the user's repository must come out of it unchanged."""
import os
import signal
from contextlib import contextmanager

from conftest import user_state


@contextmanager
def untouched(project):
    """The scenario inside leaves the user's repository exactly as it was, no worktree behind."""
    before = user_state(project)
    yield
    assert user_state(project) == before
    leftovers = project.root / "__result__/.worktrees"
    assert not leftovers.exists() or not any(leftovers.iterdir())


def kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def drain(fd):
    """Read a pseudo-terminal's master until it is closed: the writer never blocks on a full one."""
    try:
        while os.read(fd, 4096):
            pass
    except OSError:
        pass
