"""utils/launcher.py: the run's processes, signals forwarded once, statuses nobody else could record."""
import signal
import subprocess
import time

from conftest import PYTHON


def test_ctrl_c_while_the_run_starts_up_is_recorded_as_interrupted(project):
    proc = subprocess.Popen([PYTHON, "code/utils/cli.py", "run", "early", "epochs=50"], cwd=project.root,
                            env=project.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    record = project.run_dir("early", 0) / "statistic.json"
    end = time.time() + 60
    while not record.exists() and time.time() < end:
        time.sleep(0.01)
    time.sleep(0.3)  # main.py is still importing torch: its own handlers are not there yet
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0
    assert project.record("early", 0)["status"] == "interrupted", out


def test_threads_are_recorded(project):
    project.cli("run", "t", "epochs=1", check=True)
    assert project.record("t", 0)["threads"] >= 1
