"""utils/launcher.py and the run's life: one writer per run folder, a Ctrl-C at any moment of
start-up recorded, a run that stops when its launcher is killed, threads restored by -f and con."""
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import (PYTHON, assert_one_line_mistake, children, gone, interrupt, learned, read_json,
                      record_at, wait_for)
from utils import checkpoints

LONG = ["epochs=1000", "checkpoint_interval=0"]  # stopped by the test long before its end


# ---- one writer per run folder ---------------------------------------------------------------

def test_a_live_run_has_one_writer_whatever_the_flags(project):
    run = project.start("run", "-f", "live", *LONG)
    try:
        record = record_at(project, "live")
        for flags in (["-f"], ["--force"], ["-f", "--force"], []):
            out = project.cli("con", "live", *flags)
            assert_one_line_mistake(out, "live/0 is running right now", f"pid {record['pid']}")
        assert project.cli("con", "live/0", "--force").returncode == 2
    finally:
        interrupt(run)
    assert project.record("live", 0)["status"] == "interrupted"
    log = (project.run_dir("live", 0) / "log").read_text()
    assert "continuing" not in log and log.count("epoch 1/1000") == 1
    assert len(list((project.run_dir("live", 0) / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_con_force_takes_a_run_another_host_says_is_running_and_f_keeps_the_seed(project):
    run = project.start("run", "stray", "epochs=3", "checkpoint_interval=0", OMP_NUM_THREADS="1")
    try:
        record_at(project, "stray")
    finally:
        interrupt(run)
    record = project.record("stray", 0)
    assert record["status"] == "interrupted" and record["threads"] == 1
    elsewhere = {**record, "status": "running", "host": "node-elsewhere", "pid": 1}
    (project.run_dir("stray", 0) / "statistic.json").write_text(json.dumps(elsewhere))

    for flags in ([], ["-f"]):  # -f is the fixed seed, never an override of `running`
        assert_one_line_mistake(project.cli("con", "stray", *flags), "stray/0 is still running", "node-elsewhere", "--force")
    out = project.cli("con", "stray", "-f", "--force", env={"OMP_NUM_THREADS": None})
    assert out.returncode == 0, out.stderr
    done = project.record("stray", 0)
    assert done["status"] == "finished" and done["epoch"] == 3
    assert done["seed"] == record["seed"] and done["fixed_seed"] is False  # -f on con changes nothing
    assert done["threads"] == 1  # the recorded thread count, not this machine's default


@pytest.mark.slow
def test_two_cons_at_once_run_one_process(project):
    run = project.start("run", "twice", *LONG)
    try:
        record_at(project, "twice")
    finally:
        interrupt(run)
    first = project.start("con", "twice")
    try:
        record_at(project, "twice", epoch=project.record("twice", 0)["epoch"] + 1)
        assert_one_line_mistake(project.cli("con", "twice"), "twice/0 is running right now")
    finally:
        interrupt(first)
    assert (project.run_dir("twice", 0) / "log").read_text().count("continuing after epoch") == 1


# ---- Ctrl-C at every moment of start-up ----------------------------------------------------------

def record_made(project, proc):
    return (project.run_dir("early", 0) / "statistic.json").exists()


def importing_torch(project, proc):
    """The trainer exists and has mapped libtorch: in the middle of `import torch`."""
    for pid in children(proc.pid):
        try:
            if "libtorch" in Path(f"/proc/{pid}/maps").read_text():
                return True
        except OSError:
            pass
    return False


def recorder_started(project, proc):
    return (project.run_dir("early", 0) / "log").exists()


def first_epoch(project, proc):
    return (read_json(project.run_dir("early", 0) / "statistic.json") or {}).get("epoch", 0) >= 1


@pytest.mark.parametrize("moment", [record_made, importing_torch, recorder_started, first_epoch],
                         ids=lambda f: f.__name__)
def test_ctrl_c_at_any_moment_of_start_up_ends_the_run_interrupted(project, moment):
    """SIGINT to the launcher (a terminal sends it to the foreground job, and the run has a process
    group of its own) as soon as the run reaches `moment`: it stops, and its record says so."""
    proc = subprocess.Popen([PYTHON, "code/utils/cli.py", "run", "early", *LONG], cwd=project.root,
                            env=project.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: moment(project, proc) or proc.poll() is not None, what=moment.__name__)
        trainers = children(proc.pid)
    finally:
        out = interrupt(proc)[0]
    assert proc.returncode == 130, out
    assert project.record("early", 0)["status"] == "interrupted", out
    assert all(gone(pid) for pid in trainers)


# ---- the launcher killed -------------------------------------------------------------------------

def test_a_run_whose_launcher_is_killed_stops_interrupted(project):
    run = project.start("run", "-f", "orphan", *LONG)
    trainer = None
    try:
        trainer = record_at(project, "orphan")["pid"]
        run.kill()  # SIGKILL to `run` itself: nothing of it can forward a signal
        run.communicate()
        wait_for(lambda: gone(trainer), timeout=60, what="the trainer to stop with its launcher")
    finally:
        if trainer and not gone(trainer):
            os.kill(trainer, signal.SIGKILL)
    record = project.record("orphan", 0)
    assert record["status"] == "interrupted"
    last = os.readlink(project.run_dir("orphan", 0) / "checkpoint/epoch_last.pth")
    # the step it was in (or its last finished epoch) is safe: `con` goes on from it
    assert checkpoints.position(last)[0] == record["epoch"], last


# ---- threads -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_rerun_f_runs_with_the_recorded_threads(project):
    project.cli("run", "-f", "thr", "epochs=1", env={"OMP_NUM_THREADS": "1"}, check=True)
    assert project.record("thr", 0)["threads"] == 1
    project.cli("rerun", "-f", "thr", env={"OMP_NUM_THREADS": None}, check=True)
    again = project.record("thr", 1)
    assert again["threads"] == 1 and learned(again) == learned(project.record("thr", 0))
    project.cli("rerun", "-f", "thr", env={"OMP_NUM_THREADS": "2"}, check=True)  # the user's choice wins
    assert project.record("thr", 2)["threads"] == 2
