"""job: one combination of a sweep (`Job`), and the `run` subprocess that runs it, followed
from its start to its exit (`Child`), the same on this machine as on a Ray node."""
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from utils import process

POLL_S = 0.2  # how often a pool looks at its runs
NAME_FD = "RUNTAG_NAME_FD"  # where `run` says its name (utils/supervisor.py report_name)

# The run dies with whoever started it (the sweep's driver, a Ray worker), as `run`'s main.py
# dies with `run` (utils/process.py): a small Python arms PR_SET_PDEATHSIG, then becomes `run`
# (exec keeps it). Not a preexec_fn: forking from a threaded process (the pool's workers, Ray's)
# can deadlock the child on a lock another thread held.
ARM = ("import ctypes, os, sys; ctypes.CDLL(None).prctl({option}, {signal}); "
       "os.getppid() == int(sys.argv[1]) or os._exit(1); os.execv(sys.argv[2], sys.argv[2:])")


def dying_with_us(cmd):
    """cmd, started so that it gets SIGTERM when this process dies, even by SIGKILL: `run` then
    ends its run `interrupted` after its checkpoint instead of training on as an orphan."""
    arm = ARM.format(option=process.PR_SET_PDEATHSIG, signal=int(signal.SIGTERM))
    return [sys.executable, "-S", "-c", arm, str(os.getpid()), *cmd]


@dataclass
class Job:
    """One combination to run, and what became of it."""
    overrides: dict
    name: str = None      # tag/id, once the run has said it (or the run it continues)
    rc: int = None        # exit status of `run`
    seconds: float = 0.0  # from start to exit, as the pool saw it
    why: str = ""         # the last line of the run's stderr, when it failed
    trial: object = None  # a search's Optuna trial (utils/sweep/search.py)
    pruned: bool = False  # stopped by the search's pruner
    resume: bool = False  # `con name`: an interrupted run of the combination, with a checkpoint


def last_line(text):
    """The last line of text that is not blank (a progress bar's \\r counts as a line break); "" if none."""
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


class Child:
    """One `run` subprocess, in a process group of its own (utils/process.py), that dies with us.
    Its stdout and stderr go to unnamed temporary files, not to the sweep's terminal: the run
    folder's `log` keeps its stdout, and a failure's last line is reported. It writes its name
    `tag/id` into a pipe (fd RUNTAG_NAME_FD) as soon as its record exists (utils/supervisor.py): a
    pipe, not a file, so that nothing is left behind when we are killed."""

    def __init__(self, cmd, env, cwd):
        self.out, self.err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        self.pipe, write = os.pipe()
        os.set_blocking(self.pipe, False)
        self.said = b""
        self.begin = time.perf_counter()
        try:
            self.group = process.Group(dying_with_us(cmd), cwd=cwd, env={**env, NAME_FD: str(write)},
                                       pass_fds=[write], stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        except BaseException:
            self.close()
            raise
        finally:
            os.close(write)  # the run's copy is the only one: its exit is the pipe's end

    def follow(self, job, stop=None):
        """Yield "start" once the run has said its name (at once for a run continued), then "end"
        once it has exited. `stop()`, asked at each poll: when true, the run is interrupted (once)."""
        try:
            rc, started, stopped = None, False, False
            while rc is None:
                try:
                    rc = self.group.wait(POLL_S)  # returns within ~50 ms of the exit
                except subprocess.TimeoutExpired:
                    pass
                if rc is None and stop and not stopped and stop():
                    stopped = True
                    self.interrupt()
                job.name = job.name or self.name()
                if job.name and not started:
                    started = True
                    yield "start"
            job.rc, job.seconds = rc, time.perf_counter() - self.begin
            job.why = self.last_error() if rc else ""
        finally:
            self.close()
        yield "end"

    def name(self):
        """tag/id once the run has written its line; None before (or if it never does)."""
        try:
            if self.pipe is not None:
                self.said += os.read(self.pipe, 4096)
        except OSError:  # nothing yet (EAGAIN)
            pass
        line, newline, _ = self.said.partition(b"\n")
        return line.decode(errors="replace").strip() or None if newline else None

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
        if self.pipe is not None:
            os.close(self.pipe)
            self.pipe = None
