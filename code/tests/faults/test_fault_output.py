"""A run outlives its terminal and its pipe: `| head`, a closed stdout, a closed terminal (SIGHUP
and EIO on every write). The echo stops; the training and the log go on to the end."""
import fcntl
import os
import subprocess
import termios
import threading

from conftest import PYTHON, finish, record_at
from faultlib import drain, untouched

RUN = ["epochs=6", "checkpoint_interval=0"]


def finished_whole(project, tag):
    record = project.record(tag, 0)
    log = (project.run_dir(tag, 0) / "log").read_text()
    assert record["status"] == "finished" and record["epoch"] == 6, log
    assert all(f"epoch {n}/6" in log for n in range(1, 7)) and "test (best epoch" in log


def test_a_run_piped_into_head_finishes(project):
    with untouched(project):
        out = project.sh(f"run -f piped {' '.join(RUN)} | head -n 2")
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 2
    finished_whole(project, "piped")


def test_a_run_with_stdout_and_stderr_closed_finishes(project):
    with untouched(project):
        out = project.sh(f"run -f closed {' '.join(RUN)} >&- 2>&-")
    assert out.returncode == 0, out.stderr
    finished_whole(project, "closed")


def test_a_run_whose_terminal_is_closed_finishes(project):
    """The run's terminal is a pseudo-terminal; closing its master side is closing the window:
    SIGHUP to the session, and EIO on every later write to it."""
    master, slave = os.openpty()

    def controlling_terminal():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([PYTHON, "code/utils/cli.py", "run", "-f", "hung", *RUN], cwd=project.root,
                            env=project.env(), stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, preexec_fn=controlling_terminal)
    os.close(slave)
    reader = threading.Thread(target=drain, args=(master,), daemon=True)
    reader.start()
    with untouched(project):
        record_at(project, "hung", epoch=2)
        os.close(master)  # the window closes
        assert finish(proc) == 0
    finished_whole(project, "hung")

