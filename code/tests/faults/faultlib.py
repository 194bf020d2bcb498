"""What every fault scenario shares: the user's repository must come out of it unchanged."""
import json
import os
import signal
from contextlib import contextmanager
from pathlib import Path

from conftest import wait_for


def user_state(project):
    """HEAD, branch, index, status, stash and worktrees: what no scenario may change."""
    return {"head": project.git("rev-parse", "HEAD"), "branch": project.git("symbolic-ref", "HEAD"),
            "index": project.git("ls-files", "--stage"), "status": project.git("status", "--porcelain"),
            "stash": project.git("stash", "list"), "worktrees": project.git("worktree", "list", "--porcelain")}


@contextmanager
def untouched(project):
    """The scenario inside leaves the user's repository exactly as it was, no worktree behind."""
    before = user_state(project)
    yield
    assert user_state(project) == before
    leftovers = project.root / "__result__/.worktrees"
    assert not leftovers.exists() or not any(leftovers.iterdir())


def read(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def record_at(project, tag, id=0, epoch=1):
    path = project.run_dir(tag, id) / "statistic.json"
    return wait_for(lambda: (r := read(path)) and r["epoch"] >= epoch and r, what=f"epoch {epoch} of {tag}/{id}")


def gone(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
