"""config `notify` (utils/notify.py): a shell command run once when a run ends, however it ends,
and once when a sweep ends, with the facts in RUNTAG_* variables; a notifier that fails or hangs
never changes the run's status and leaves one line in its log."""
import os
import signal
import subprocess

import numpy as np
import pytest
from sklearn.datasets import load_digits

from conftest import PYTHON, interrupt, make_project, ok, record_at

TINY = ["epochs=1", "data=tiny"]
# Each call appends its RUNTAG_* variables, then a line END, to the file $NOTES.
NOTIFIER = 'env | grep ^RUNTAG_ | sort >> "$NOTES"; echo END >> "$NOTES"'
BOOM = ("    model.train()\n", "    model.train()\n    import os\n"
        "    if os.environ.get('BOOM'):\n        raise RuntimeError('exploded on purpose')\n")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A project with 300 digits as its data, and an epoch.py that raises when $BOOM is set."""
    project = make_project(tmp_path_factory.mktemp("notify") / "project")
    digits = load_digits()
    (project.root / "__data__/tiny").mkdir(parents=True)
    np.savez(project.root / "__data__/tiny/data.npz", x=digits.images[:300] / 16.0, y=digits.target[:300])
    epoch_py = project.root / "code/epoch.py"
    project.commit("code/epoch.py", epoch_py.read_text().replace(*BOOM, 1), "an epoch that can raise")
    return project


def notes(path):
    """[{variable: value}] of each call the notifier made, in order."""
    if not path.exists():
        return []
    calls, current = [], {}
    for line in path.read_text().splitlines():
        if line == "END":
            calls.append(current)
            current = {}
        elif "=" in line:
            key, _, value = line.partition("=")
            current[key] = value
    return calls


def test_a_finished_run_is_told_once_with_its_facts(tiny, tmp_path):
    path = tmp_path / "notes"
    ok(tiny.cli("run", "-f", "fine", *TINY, f"notify={NOTIFIER}", env={"NOTES": str(path)}))
    [call] = notes(path)
    record = tiny.record("fine", 0)
    assert call["RUNTAG_RUN"] == "fine/0" and call["RUNTAG_STATUS"] == "finished"
    assert call["RUNTAG_BEST"] == f"best/val_acc={record['metrics']['best/val_acc']}"
    assert float(call["RUNTAG_DURATION_S"]) == record["duration_s"] > 0
    assert call["RUNTAG_LOG"] == str(tiny.run_dir("fine", 0) / "log") and "RUNTAG_ERROR" not in call


def test_a_crash_is_told_failed_with_the_tracebacks_last_line(tiny, tmp_path):
    path = tmp_path / "notes"
    out = tiny.cli("run", "crash", *TINY, f"notify={NOTIFIER}", env={"NOTES": str(path), "BOOM": "1"})
    assert out.returncode == 1, out.stderr
    [call] = notes(path)
    assert call["RUNTAG_RUN"] == "crash/0" and call["RUNTAG_STATUS"] == "failed"
    assert call["RUNTAG_ERROR"] == "RuntimeError: exploded on purpose"
    assert tiny.record("crash", 0)["status"] == "failed"


@pytest.mark.parametrize("notifier, said", [("echo no mail server >&2; exit 1", "exited 1: no mail server"),
                                            ("sleep 1000", "killed after 0.5 s")])
def test_a_notifier_that_fails_or_hangs_leaves_the_run_finished_and_a_line_in_its_log(tiny, notifier, said):
    tag = "bad" if "exit" in notifier else "hang"
    out = tiny.cli("run", "-f", tag, *TINY, f"notify={notifier}", "notify_timeout=0.5")
    assert out.returncode == 0, out.stderr
    assert tiny.record(tag, 0)["status"] == "finished"
    lines = [line for line in (tiny.run_dir(tag, 0) / "log").read_text().splitlines() if "notify" in line]
    assert len(lines) == 1 and said in lines[0], lines
    assert said in out.stderr


def test_a_killed_trainer_and_a_ctrl_c_are_each_told_once(tiny, tmp_path):
    path = tmp_path / "notes"
    env = {**tiny.env(), "NOTES": str(path)}
    for tag in ("killed", "stopped"):
        proc = subprocess.Popen([PYTHON, "code/utils/cli.py", "run", tag, "epochs=200", "data=tiny",
                                 f"notify={NOTIFIER}"], cwd=tiny.root, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        trainer = record_at(tiny, tag)["pid"]
        if tag == "killed":
            os.kill(trainer, signal.SIGKILL)  # main.py cannot record this end: the launcher does
            proc.communicate()
        else:
            interrupt(proc)
    calls = notes(path)
    assert [(c["RUNTAG_RUN"], c["RUNTAG_STATUS"]) for c in calls] == [("killed/0", "killed"),
                                                                      ("stopped/0", "interrupted")]
    assert calls[0]["RUNTAG_ERROR"] == "killed by SIGKILL"


def test_a_sweep_is_told_once_and_each_of_its_runs_once(tiny, tmp_path):
    path = tmp_path / "notes"
    config = tiny.root / "code/config.py"
    tiny.commit("code/config.py", config.read_text().replace('notify = ""', f"notify = {NOTIFIER!r}", 1),
                "a notifier for every run")
    tiny.commit("code/sweeps/two.yaml", "default:\n  epochs: 1\n  data: tiny\n---\nlr: [1.0e-3, 2.0e-3]\n",
                "a sweep of 2")
    try:
        ok(tiny.cli("sweep", "-f", "two", "code/sweeps/two.yaml", "--workers", "2", env={"NOTES": str(path)}))
    finally:  # the other tests' runs notify only when they say so
        tiny.commit("code/config.py", config.read_text().replace(f"notify = {NOTIFIER!r}", 'notify = ""', 1),
                    "no notifier")
    calls = notes(path)
    runs = sorted(c["RUNTAG_RUN"] for c in calls if "RUNTAG_SWEEP" not in c)
    [sweep] = [c for c in calls if "RUNTAG_SWEEP" in c]
    assert runs == ["two/0", "two/1"] and calls[-1] is sweep
    assert sweep["RUNTAG_SWEEP"] == "two" and sweep["RUNTAG_STATUS"] == "finished"
    assert sweep["RUNTAG_SUMMARY"] == "finished 2" and sorted(sweep["RUNTAG_RUNS"].split()) == runs


def test_a_queued_run_taken_out_is_told_cancelled(tiny, tmp_path):
    from test_queue import Held
    path = tmp_path / "notes"
    held = Held(tiny)  # its one slot taken: the run waits
    try:
        out = ok(tiny.cli("run", "--queue", "waits", *TINY, f"notify={NOTIFIER}", env={"NOTES": str(path)}))
        assert "waits/0 queued" in out.stdout
        ok(tiny.cli("queue", "rm", "waits/0", env={"NOTES": str(path)}))
    finally:
        held.release()
    [call] = notes(path)
    assert (call["RUNTAG_RUN"], call["RUNTAG_STATUS"]) == ("waits/0", "cancelled")
    assert tiny.record("waits", 0)["status"] == "cancelled"
