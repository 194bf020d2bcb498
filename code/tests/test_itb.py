"""TensorBoard: `itb` over chosen runs, `itb --stop`, and the single one that `run` starts."""
import json
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import stretched


def alive(pid):
    """Running, not a zombie (nothing may reap a detached TensorBoard at once)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def state(project):
    path = project.root / "__statistic__/tensorboard/state.json"
    return json.loads(path.read_text()) if path.exists() else None


def tensorboards_of(project):
    """Pids of live TensorBoard processes started for this project."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"tensorboard.main" in cmd and str(project.root).encode() in cmd and alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def get_runs(port, want, timeout=60):
    """GET /data/runs until it lists `want` (TensorBoard loads event files in the background)."""
    deadline, seen = time.time() + stretched(timeout), None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2) as r:
                seen = sorted(json.load(r))
            if seen == want:
                return seen
        except OSError:
            pass
        time.sleep(0.5)
    return seen


@pytest.fixture(scope="module")
def tb_project(shared_project):
    yield shared_project
    shared_project.cli("itb", "--stop")  # nothing outlives the tests
    for pid in tensorboards_of(shared_project):
        raise AssertionError(f"TensorBoard {pid} left running")


def test_run_starts_one_tensorboard_and_ids_count_up(tb_project):
    """Two runs of a tag get ids 0 and 1; the first starts a TensorBoard, the second reuses it."""
    p = tb_project
    first = p.sh("unset CI; run -f a epochs=2", shell="bash")
    second = p.sh("unset CI; run -f a epochs=2", shell="zsh")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "a/0" in first.stdout and "a/1" in second.stdout
    assert [p.record("a", i)["id"] for i in (0, 1)] == [0, 1]
    assert "TensorBoard over __result__" in first.stdout and "TensorBoard" not in second.stdout
    s = state(p)
    assert tensorboards_of(p) == [s["pid"]] and s["shows"] == ["__result__"]
    assert get_runs(s["port"], ["a/0/tensorboard", "a/1/tensorboard"]) == ["a/0/tensorboard", "a/1/tensorboard"]
    ci = p.sh("run -f a epochs=1 tensorboard=False", shell="bash")  # CI set, and off in config
    assert ci.returncode == 0 and "TensorBoard" not in ci.stdout and tensorboards_of(p) == [s["pid"]]


def test_itb_serves_exactly_the_chosen_runs_then_stops(tb_project):
    p = tb_project
    p.cli("run", "-f", "b", "epochs=2", check=True)
    before = state(p)
    out = p.sh("itb a/0 b", shell="zsh")
    assert out.returncode == 0, out.stderr
    s = state(p)
    assert f"http://127.0.0.1:{s['port']}/" in out.stdout
    if before:  # the TensorBoard of `run` gave way: one of ours at a time
        assert not alive(before["pid"])
    assert tensorboards_of(p) == [s["pid"]]
    assert get_runs(s["port"], ["a/0", "b/0"]) == ["a/0", "b/0"]  # not a/1, a/2

    stop = p.sh("itb --stop", shell="bash")
    assert stop.returncode == 0 and str(s["pid"]) in stop.stdout
    deadline = time.time() + stretched(10)
    while alive(s["pid"]) and time.time() < deadline:
        time.sleep(0.1)
    assert not alive(s["pid"]) and tensorboards_of(p) == [] and state(p) is None
    assert "no TensorBoard" in p.sh("itb --stop").stdout
