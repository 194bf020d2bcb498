"""job: one combination of a sweep (`Job`), and the `run` subprocess that runs it, followed
from its start to its exit (`Child`), the same on this machine as on a Ray node."""
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

from utils import process

POLL_S = 0.2  # how often a pool looks at its runs


@dataclass
class Job:
    """One combination to run, and what became of it."""
    overrides: dict
    name: str = None      # tag/id, once the run has said it
    rc: int = None        # exit status of `run`
    seconds: float = 0.0  # from start to exit, as the pool saw it
    why: str = ""         # the last line of the run's stderr, when it failed
    trial: object = None  # a search's Optuna trial (utils/sweep/search.py)
    pruned: bool = False  # stopped by the search's pruner


def last_line(text):
    """The last line of text that is not blank (a progress bar's \\r counts as a line break); "" if none."""
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


class Child:
    """One `run` subprocess, in a process group of its own (utils/process.py). Its stdout and
    stderr go to temporary files, not to the sweep's terminal: the run folder's `log` keeps its
    stdout, and a failure's last line is reported. It writes its name `tag/id` into the file
    that RUNTAG_NAME_FILE names as soon as its record exists (utils/launch.py)."""

    def __init__(self, cmd, env, cwd):
        self.out, self.err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        fd, self.name_file = tempfile.mkstemp(prefix="runtag-name.")
        os.close(fd)
        self.begin = time.perf_counter()
        try:
            self.group = process.Group(cmd, cwd=cwd, env={**env, "RUNTAG_NAME_FILE": self.name_file},
                                       stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        except BaseException:
            self.close()
            raise

    def follow(self, job):
        """Yield "start" once the run has said its name, then "end" once it has exited."""
        try:
            rc = None
            while rc is None:
                try:
                    rc = self.group.wait(POLL_S)  # returns within ~50 ms of the exit
                except subprocess.TimeoutExpired:
                    pass
                if job.name is None and (name := self.name()):
                    job.name = name
                    yield "start"
            job.rc, job.seconds = rc, time.perf_counter() - self.begin
            job.why = self.last_error() if rc else ""
        finally:
            self.close()
        yield "end"

    def name(self):
        try:
            with open(self.name_file) as f:
                return f.read().strip() or None  # written whole (atomic), or not yet
        except OSError:
            return None

    def last_error(self):
        self.err.seek(0)
        return last_line(self.err.read())

    def interrupt(self):
        """SIGINT to the run's group: `run` ignores it, main.py ends the run as `interrupted`."""
        self.group.signal(signal.SIGINT)

    def wait(self):
        return self.group.wait()

    def close(self):
        self.out.close()
        self.err.close()
        try:
            os.unlink(self.name_file)
        except FileNotFoundError:
            pass
