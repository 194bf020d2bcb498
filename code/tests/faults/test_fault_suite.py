"""Item 12: the suite's waits fail on a hang, never on a slow machine. A wait lasts while the
test's processes use the CPU (conftest.Progress), however long that takes; it fails once they
stop progressing. Before, each wait was a fixed 120 s that a loaded machine reached mid-epoch."""
import subprocess

import pytest

from conftest import PYTHON, communicate, wait_for, watched

WORK = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\nprint('done')"


def test_a_command_that_keeps_working_outlasts_the_stall_limit():
    # 2 s of CPU (more wall time on a loaded machine) against a 1 s limit on no progress
    out = watched([PYTHON, "-c", WORK.format(s=2)], timeout=1)
    assert out.returncode == 0 and out.stdout.strip() == "done"


def test_a_wait_on_working_processes_outlasts_the_stall_limit(tmp_path):
    flag = tmp_path / "flag"
    worker = subprocess.Popen([PYTHON, "-c", WORK.format(s=2) + f"\nopen({str(flag)!r}, 'w').close()"])
    try:
        assert wait_for(flag.exists, timeout=1, what="the worker's flag")
    finally:
        worker.wait()


def test_a_command_that_hangs_fails_once_it_stops_progressing():
    hung = subprocess.Popen([PYTHON, "-c", "import time; print('up', flush=True); time.sleep(3600)"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with pytest.raises(AssertionError, match="made no progress"):
        communicate(hung, timeout=1)
    assert hung.poll() is not None  # killed, not left behind
