"""eval --backend ray|slurm on real runs: each run scored by a Ray task (a one-node Ray cluster
this test starts, as test_sweep does) or a Slurm job (the one-node Slurm of code/tests/slurm/start.sh),
the metrics handed back to the command, which writes the records itself. What must hold: the
same numbers as the local backend gives (the same checkpoint, code and data), the records
otherwise unchanged, the locks let go, and a Ctrl-C stops the tasks or cancels the jobs."""
import json
import signal
import subprocess

import pytest

from conftest import assert_one_line_mistake, communicate, gone, make_project, need, need_module, ok, wait_for
from test_eval import TINY, raw, with_tiny_data, without
from test_slurm import slurm_up
from test_sweep import ray_head
from utils import runlock

ENV = {"OMP_NUM_THREADS": "1"}  # the same threads here as in a Ray task (Ray's default) or a job
# An evaluation that marks its process in $EVAL_MARKS and never returns: a Ctrl-C has to stop it.
HANG = '''

def hang(model, loader, args):
    import os, pathlib, time
    marks = pathlib.Path(os.environ["EVAL_MARKS"])
    marks.mkdir(exist_ok=True)
    (marks / str(os.getpid())).touch()
    time.sleep(3600)
'''


def two_runs(tmp_path_factory, name):
    """Two finished runs tiny/0 and tiny/1, scored by the local backend as `here`, and `hang` committed."""
    project = with_tiny_data(make_project(tmp_path_factory.mktemp(name) / "project"))
    for _ in range(2):
        ok(project.cli("run", "-f", "tiny", *TINY))
    evaluate = project.root / "code/evaluate.py"
    project.commit("code/evaluate.py", evaluate.read_text() + HANG, "an evaluation that hangs")
    ok(project.cli("eval", "tiny", "data=digits", "--name", "here", env=ENV))
    return project


def same_as_here(project, out, name, host_check=None):
    """Each run's eval `name` holds the local backend's numbers, and nothing else changed."""
    for i in range(2):
        record = project.record("tiny", i)
        here = {k.split("/")[-1]: v for k, v in record["metrics"].items() if k.startswith("eval/here/test/")}
        there = {k.split("/")[-1]: v for k, v in record["metrics"].items() if k.startswith(f"eval/{name}/test/")}
        assert sorted(there) == sorted(here) == ["acc", "loss"], record["metrics"]
        for metric, value in here.items():
            assert there[metric] == pytest.approx(value, rel=1e-9, abs=1e-12), (metric, there, here)
        entry = next(e for e in record["evals"] if e["name"] == name)
        local = next(e for e in record["evals"] if e["name"] == "here")
        for key in ("split", "fn", "commit", "at_run", "checkpoint", "chosen", "overrides"):
            assert entry[key] == local[key], key
        assert entry["time"] and entry["host"] and entry["duration_s"] > 0
        assert f"tiny/{i} eval/{name}/test:" in out.stdout
        assert not runlock.locked(project.run_dir("tiny", i))


def stopped_by_ctrl_c(project, tmp_path, *flags, env=None):
    """eval --fn hang of both runs, a Ctrl-C once both hang; (its exit, its stderr)."""
    before = {i: raw(project, "tiny", i) for i in range(2)}
    marks = tmp_path / "marks"
    proc = project.start("eval", "tiny", "--fn", "hang", *flags, EVAL_MARKS=str(marks), **(env or {}))
    wait_for(lambda: proc.poll() is not None or (marks.is_dir() and len(list(marks.iterdir())) == 2),
             what="both runs' scoring to start")
    assert proc.poll() is None, communicate(proc)
    proc.send_signal(signal.SIGINT)
    _, err = communicate(proc)
    for i in range(2):
        assert raw(project, "tiny", i) == before[i]
        assert not runlock.locked(project.run_dir("tiny", i))
    return proc.returncode, err, [int(p.name) for p in marks.iterdir()]


def test_flags_of_a_backend_not_chosen_are_one_line(tmp_path):
    project = make_project(tmp_path / "project")
    assert_one_line_mistake(project.cli("eval", "tiny", "--address", "1.2.3.4:6379"), "--address without --backend ray")
    assert_one_line_mistake(project.cli("eval", "tiny", "--partition", "gpu"), "--partition without --backend slurm")
    assert_one_line_mistake(project.cli("eval", "tiny", "--backend", "slurm", "--workers", "2"),
                            "--workers with --backend slurm")


# --- Ray ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_ray_backend_scores_as_the_local_one(tmp_path_factory, tmp_path, monkeypatch):
    need_module("ray")
    monkeypatch.setenv("EVAL_MARKS", str(tmp_path / "marks"))  # a task's child sees the cluster's environment
    project = two_runs(tmp_path_factory, "ray")
    before = {i: json.loads(raw(project, "tiny", i)) for i in range(2)}
    assert_one_line_mistake(project.cli("eval", "tiny", "--backend", "ray", "--address", "127.0.0.1:1"),
                            "no Ray cluster answers at 127.0.0.1:1")
    with ray_head(project) as (address, env):
        flags = ["--backend", "ray", "--address", address]
        out = ok(project.cli("eval", "tiny", "data=digits", "--name", "ray", *flags, env={**env, **ENV}))
        same_as_here(project, out, "ray")
        for i in range(2):
            assert without(project.record("tiny", i), "ray") == before[i]
        rc, err, pids = stopped_by_ctrl_c(project, tmp_path, *flags, env={"RAY_AUTH_MODE": "disabled"})
        assert rc == 130, err
        wait_for(lambda: all(map(gone, pids)), what="the Ray tasks' children to end")


# --- Slurm -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_slurm_backend_scores_as_the_local_one(tmp_path_factory, tmp_path):
    need("a running Slurm (apt-get install -y slurm-wlm munge; bash code/tests/slurm/start.sh)", slurm_up())
    need_module("submitit")
    project = two_runs(tmp_path_factory, "slurm")
    before = {i: json.loads(raw(project, "tiny", i)) for i in range(2)}
    out = ok(project.cli("eval", "tiny", "data=digits", "--name", "slurm", "--backend", "slurm", "--time", "30",
                         env=ENV))
    assert "as Slurm job" in out.stdout
    same_as_here(project, out, "slurm")
    for i in range(2):
        assert without(project.record("tiny", i), "slurm") == before[i]
    rc, err, pids = stopped_by_ctrl_c(project, tmp_path, "--backend", "slurm", "--time", "30")
    assert rc == 130, err
    jobs = [e["job"] for e in json.loads((project.root / "__statistic__/slurm/_eval/submitted.json").read_text())]
    assert len(jobs) == 4
    wait_for(lambda: not subprocess.run(["squeue", "-h", "-j", ",".join(jobs)], capture_output=True,
                                        text=True).stdout.strip(), what="the cancelled jobs to leave the queue")
    wait_for(lambda: all(map(gone, pids)), what="the jobs' children to end")
