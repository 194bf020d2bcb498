"""Fixtures: a temporary copy of this template as a fresh git repository, and ways to drive it."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
FAST = ["epochs=2"]  # a real run, kept short


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Project:
    """A clone-like copy of the template's working tree, committed in a fresh repository."""

    def __init__(self, root):
        self.root = Path(root)

    def cli(self, *args, check=False, env=None, **kw):
        """`python code/utils/cli.py ARGS`; returns CompletedProcess (text). `env`: variables to
        set, or to unset with None."""
        out = subprocess.run([PYTHON, str(self.root / "code/utils/cli.py"), *map(str, args)],
                             cwd=self.root, capture_output=True, text=True, env=self.env(**(env or {})), **kw)
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
        return subprocess.run([shell, "-c", full], cwd=self.root, capture_output=True, text=True,
                              env=self.env(), **kw)

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


def wait_for(predicate, timeout=120, what="condition"):
    """Poll until predicate() is truthy and return its value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


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
