"""Fixtures: a temporary copy of this template as a fresh git repository, and ways to drive it."""
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
FAST = ["epochs=2"]  # a real run, kept short

sys.path.insert(0, str(TEMPLATE / "code"))  # the template's modules
from utils import process  # noqa: E402


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Project:
    """A clone-like copy of the template's working tree, committed in a fresh repository."""

    def __init__(self, root):
        self.root = Path(root)

    def cli(self, *args, check=False, env=None, input=None, timeout=None, **kw):
        """`python code/utils/cli.py ARGS`; returns CompletedProcess (text). `env`: variables to
        set, or to unset with None. `timeout`: how long it may go without progress (communicate())."""
        out = watched([PYTHON, str(self.root / "code/utils/cli.py"), *map(str, args)], input, timeout,
                      cwd=self.root, env=self.env(**(env or {})), **kw)
        if check and out.returncode != 0:
            raise AssertionError(f"{args} exited {out.returncode}\n{out.stdout}\n{out.stderr}")
        return out

    def start(self, *args, **env):
        """`cli.py ARGS` in the background (extra environment variables as keywords)."""
        return subprocess.Popen([PYTHON, str(self.root / "code/utils/cli.py"), *map(str, args)],
                                cwd=self.root, env={**self.env(), **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sh(self, script, shell="bash", **kw):
        """Run a script in a real shell that sourced code/source.sh."""
        need_program(shell)
        full = f". code/source.sh\n{script}"
        return watched([shell, "-c", full], cwd=self.root, env=self.env(), **kw)

    def env(self, **changes):
        env = dict(os.environ)
        env["PATH"] = f"{Path(PYTHON).parent}:{env['PATH']}"  # `python` is this venv's
        env.pop("RUNTAG_ROOT", None)
        env["CI"] = "true"  # no background TensorBoard from `run`
        for key, value in changes.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def git(self, *args):
        return git(self.root, *args)

    def run_dir(self, tag, id):
        return self.root / "__result__" / tag / str(id)

    def record(self, tag, id):
        return json.loads((self.run_dir(tag, id) / "statistic.json").read_text())

    def commit(self, path, text, message):
        p = self.root / path
        p.write_text(text)
        self.git("add", path)
        self.git("commit", "-qm", message)
        return self.git("rev-parse", "HEAD")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: among the slowest tests; `pytest -m 'not slow'` leaves them out")


def need(what, present):
    """A test whose optional component is missing skips, saying so, on a user's machine. Under CI,
    whose .ci/run installs every component, it fails instead: a green CI never hides a skip."""
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI runs every test: .ci/run must install it", pytrace=False)
    pytest.skip(f"{what} is not installed here (CI installs it: see .ci/run)")


def need_program(name):
    need(f"the program {name}", shutil.which(name))


def need_module(name):
    need(f"the Python package {name} (pip install -r code/requirements-{name}.txt)", importlib.util.find_spec(name))


def ok(out):
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def assert_one_line_mistake(out, *words):
    """Exit 2 and exactly one stderr line `runtag: ...` holding the words; no traceback."""
    lines = out.stderr.splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("runtag: "), out.stderr[-2000:]
    for word in words:
        assert word in lines[0], lines[0]


def read_json(path):
    """The file's JSON, or None while it is missing or being replaced."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def learned(record):
    """A run's metrics that a fixed seed makes bit-identical: all but the machine's (last/system_*)."""
    return {k: v for k, v in record["metrics"].items() if not k.startswith("last/system_")}


def record_at(project, tag, id=0, epoch=1):
    """The run's record once it has finished `epoch` epochs."""
    path = project.run_dir(tag, id) / "statistic.json"
    return wait_for(lambda: (r := read_json(path)) and r["epoch"] >= epoch and r, what=f"epoch {epoch} of {tag}/{id}")


def interrupt(proc):
    """Ctrl-C to a started command, and its output once it has ended."""
    proc.send_signal(signal.SIGINT)
    return communicate(proc)


def gone(pid):
    return not process.alive(pid)


def children(pid):
    """Processes whose parent is pid (this kernel has no /proc/PID/task/*/children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().split(")")[-1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return found


def user_state(project):
    """Everything of the user's that no command may touch: HEAD, branch, index, tree, status,
    stash, worktrees."""
    return {"head": project.git("rev-parse", "HEAD"), "branch": project.git("symbolic-ref", "HEAD"),
            "index": project.git("ls-files", "--stage"), "staged": project.git("diff", "--cached"),
            "tree": project.git("diff"), "status": project.git("status", "--porcelain", "--untracked-files=all"),
            "stash": project.git("stash", "list"), "worktrees": project.git("worktree", "list", "--porcelain")}


def leftover_worktree(project, suffix="x1y2"):
    """A worktree as a `con`/`rerun` killed mid-way leaves it: named after a pid that is gone, at HEAD."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    where = project.root / f"__result__/.worktrees/0123456789.{dead.pid}.{socket.gethostname()}.{suffix}"
    project.git("worktree", "add", "--detach", str(where), "HEAD")
    return where


# Waiting without a clock a busy machine can reach. A limit here is `stall` seconds in which no
# process this test started (or they started) used any CPU, stretched by the machine's load: slow
# work still uses CPU and resets it; a deadlock or a wait for nothing does not. A run that spins
# forever is left to CI's own limit (90 minutes).
STALL = float(os.environ.get("RUNTAG_TEST_STALL_S", 120))


def stretched(seconds):
    """seconds, times how many runnable processes share each core now (at least 1)."""
    return seconds * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def cpu_ticks():
    """CPU time so far (clock ticks) of this process's descendants, alive or reaped: one /proc scan."""
    parents, used = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            parents.setdefault(int(fields[1]), []).append(pid)
            used[pid] = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            pass
    total, todo = 0, list(parents.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        total += used.get(pid, 0)
        todo += parents.get(pid, [])
    reaped = os.times()
    return total + round((reaped.children_user + reaped.children_system) * os.sysconf("SC_CLK_TCK"))


class Progress:
    """stalled(): True once the test's processes used no CPU for `stall` seconds (stretched)."""

    def __init__(self, stall=None):
        self.stall = STALL if stall is None else stall
        self.ticks, self.since = cpu_ticks(), time.monotonic()
        self.looked = self.since

    def stalled(self):
        now = time.monotonic()
        if now - self.looked >= 1:  # a /proc scan a second at most
            self.looked, ticks = now, cpu_ticks()
            if ticks != self.ticks:
                self.ticks, self.since = ticks, now
        return now - self.since > stretched(self.stall)


def wait_for(predicate, timeout=None, what="condition"):
    """Poll until predicate() is truthy and return its value; fail once nothing progressed for
    `timeout` seconds (see Progress; default STALL)."""
    progress = Progress(timeout)
    while not progress.stalled():
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"no progress for {progress.stall:.0f} s (stretched by the load) waiting for {what}")


def communicate(proc, input=None, timeout=None):
    """proc.communicate() for as long as it progresses (see Progress): (stdout, stderr). A stalled
    proc is killed, and the test fails with its output."""
    progress = Progress(timeout)
    while True:
        try:
            return proc.communicate(input, timeout=1)
        except subprocess.TimeoutExpired:
            input = None  # sent already: communicate() again goes on with it
            if progress.stalled():
                proc.kill()
                out, err = proc.communicate()
                raise AssertionError(f"{proc.args} made no progress for {progress.stall:.0f} s (stretched by "
                                     f"the load): a hang\n{out}\n{err}") from None


def watched(argv, input=None, timeout=None, **popen):
    """subprocess.run(argv, capture_output=True, text=True) that fails only once argv's processes
    stall (communicate()), not after a fixed time."""
    popen.pop("capture_output", None)
    popen.setdefault("text", True)
    if input is not None:
        popen["stdin"] = subprocess.PIPE
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen) as proc:
        stdout, stderr = communicate(proc, input, timeout)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def finish(proc, timeout=None):
    """proc's exit status, once it ended (waited for as communicate() does)."""
    communicate(proc, timeout=timeout)
    return proc.returncode


def make_project(dest):
    files = git(TEMPLATE, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        src = TEMPLATE / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.name", "Test Researcher")
    git(dest, "config", "user.email", "researcher@example.com")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "template")
    return Project(dest)


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / "project")


@pytest.fixture(scope="module")
def shared_project(tmp_path_factory):
    """One project for a module's read-only tests, to spend the run time once."""
    return make_project(tmp_path_factory.mktemp("shared") / "project")
