"""The record tells the truth: strict JSON when a run diverges, no start-up time added by a
`con` that failed, and the pid of the process that trains (killing it stops the whole run)."""
import json
import os
import signal
from pathlib import Path

from conftest import communicate, gone, read_json, wait_for
from faultlib import kill_all, untouched


def test_a_diverging_run_writes_strict_json_and_tables_still_work(project):
    with untouched(project):
        out = project.cli("run", "-f", "nan", "epochs=2", "lr=1e30", "optimizer=sgd", "momentum=0.0")
    text = (project.run_dir("nan", 0) / "statistic.json").read_text()
    record = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))  # no NaN literal
    assert record["status"] == "finished", out.stderr
    assert record["metrics"]["last/train_loss"] == "nan"
    assert project.cli("record", "nan").returncode == 0
    table = project.cli("table")
    assert table.returncode == 0 and "nan" in table.stdout.splitlines()[1]
    assert "nan" in project.cli("expels", "nan").stdout


def test_a_con_that_fails_to_start_adds_no_time(project):
    run = project.start("run", "-f", "slow", "epochs=200", "checkpoint_interval=0")
    wait_for(lambda: (r := read_json(project.run_dir("slow", 0) / "statistic.json")) and r["epoch"] >= 1)
    run.send_signal(signal.SIGINT)
    communicate(run)
    before = project.record("slow", 0)["duration_s"]
    (project.root / "__data__/gone").mkdir(parents=True)  # a data folder without its data.npz:
    record = project.record("slow", 0)                     # the continued run fails as it loads
    record["overrides"]["data"] = "gone"
    (project.run_dir("slow", 0) / "statistic.json").write_text(json.dumps(record))
    assert project.cli("con", "slow").returncode != 0
    after = project.record("slow", 0)
    assert after["status"] == "failed" and after["duration_s"] == before


def test_killing_the_recorded_pid_at_any_time_stops_the_run(project):
    """statistic.json names the launcher until the trainer starts: kill -9 of that pid must not
    leave a trainer behind with nobody to report it."""
    run = project.start("run", "-f", "pid", "epochs=5000")
    path = project.run_dir("pid", 0) / "statistic.json"
    wait_for(lambda: trainers(path.parent), what="the trainer to start")
    pid = read_json(path)["pid"]
    assert pid == run.pid  # still the launcher's: the trainer has not written its own yet
    os.kill(pid, signal.SIGKILL)
    communicate(run)
    try:
        wait_for(lambda: not trainers(path.parent), timeout=60, what="the trainer to stop with its launcher")
    finally:
        kill_all(trainers(path.parent))
    assert project.record("pid", 0)["status"] in ("interrupted", "running")  # `dead` when nobody could say
    assert " running " not in project.cli("expels", "pid").stdout


def trainers(run_dir):
    """Live processes whose command line names the run folder (main.py --run-dir ...)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(run_dir).encode() in cmdline.read_bytes() and not gone(int(cmdline.parent.name)):
                found.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            pass
    return found
