"""The processes runtag starts: a run's main.py (torch.distributed.run over it for several), and a
sweep's `run` commands. Each gets a process group of its own, SIGINT/SIGTERM reach it once,
through us, nothing of it outlives it, and its exit status reads as a shell shows it.
"""
import ctypes
import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from utils import paths

PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOPS = (signal.SIGINT, signal.SIGTERM)


class Group:
    """A command started in a process group of its own: a terminal's Ctrl-C reaches us alone,
    and we pass it on once. Twice (terminal and us) could interrupt the run's own clean-up."""

    def __init__(self, cmd, **popen):
        self.child = subprocess.Popen(cmd, process_group=0, **popen)
        self.pid = self.child.pid

    def signal(self, signum):
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def wait(self, timeout=None):
        """The exit status, 128+N for a death by signal N (subprocess says -N)."""
        rc = self.child.wait(timeout)
        return rc if rc >= 0 else 128 - rc


@contextmanager
def trapped(handler):
    """SIGINT and SIGTERM call handler(signum) instead of stopping us, until the block ends."""
    previous = {sig: signal.signal(sig, lambda signum, frame: handler(signum)) for sig in STOPS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def alive(pid):
    """True while a process of that pid runs on this host (a zombie has ended)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: only its parent has not reaped it yet
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


# A run's own processes: main.py on its folder.

def processes(nproc):
    """Default: one per visible GPU, else one."""
    return nproc or max(gpus(), 1)


def gpus():
    """The GPUs this process may use, counted without importing torch (a second of start-up
    during which a Ctrl-C would find no one to record it)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
        return sum(line.startswith("GPU ") for line in listed.splitlines())
    return 0


# torch.distributed.run, through utils/distributed.py's agent(): its ends are exit statuses, not
# tracebacks. sys.path[0] is the checkout's code/, so that the import is of that commit's file.
AGENT = "import sys; sys.path[0] = sys.argv.pop(1); from utils import distributed; sys.exit(distributed.agent(sys.argv[1:]))"


def agent(checkout):
    return [sys.executable, "-c", AGENT, str(checkout / "code")]


def command(checkout, run_dir, resume, nproc, nnodes=1, node_rank=0, master=None):
    main = [str(checkout / "code" / "main.py")]
    main += ["--run-dir", str(run_dir)] if run_dir else []  # other nodes get it from rank 0
    main += ["--resume"] if resume else []
    if nproc == 1 and nnodes == 1:
        return [sys.executable, *main]
    launcher = [*agent(checkout), f"--nproc-per-node={nproc}", f"--nnodes={nnodes}"]
    if nnodes == 1:
        launcher.append("--standalone")  # a rendezvous on a free local port
    else:
        host, _, port = master.rpartition(":")
        launcher += [f"--node-rank={node_rank}", f"--master-addr={host}", f"--master-port={port}"]
    return [*launcher, *main]


def relayed(cmd, signum):
    """The signal passed on to the run. To torch.distributed.run, SIGTERM: it passes it on to every
    rank, and a rank still starting up (before main.py's handler) ends silently, where SIGINT's
    KeyboardInterrupt prints a traceback per process. main.py takes both the same way."""
    return signal.SIGTERM if AGENT in cmd else signum


def train(cmd, threads=None, lock=None):
    """Run main.py's command and wait; (exit status, the first signal that stopped us or None).
    SIGINT/SIGTERM reach the run's group once: it ends as `interrupted` after its last checkpoint
    is safe. It inherits the run folder's `lock` descriptor, and stops the same way if we are killed."""
    stopped, group = [], []

    def forward(signum):
        stopped.append(signum)
        if group:
            group[0].signal(relayed(cmd, signum))

    # Before the child exists: a Ctrl-C from here on is never lost. A closed terminal (SIGHUP)
    # stops nothing: we and the run (which inherits the ignoring) go on; the run's log keeps it all.
    hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with trapped(forward):
            if not stopped:
                group.append(Group(cmd, env=environment(threads), pass_fds=[lock] if lock else [],
                                   preexec_fn=die_with_parent(os.getpid())))
                if stopped:  # arrived while it was being started
                    group[0].signal(relayed(cmd, stopped[0]))
            rc = group[0].wait() if group else 128 + stopped[0]
    finally:
        signal.signal(signal.SIGHUP, hup)
        if group:
            group[0].signal(signal.SIGKILL)  # nothing of the run outlives it
    return rc, (stopped[0] if stopped else None)


def killed_by(rc):
    """The name of the signal (SIGKILL) that an exit status 128+N says killed the run's processes
    (for several, a rank: see distributed.agent), or None. 130 is main.py's own `interrupted`."""
    try:
        return signal.Signals(rc - 128).name if rc > 128 and rc != 130 else None
    except ValueError:
        return None


def environment(threads):
    """The run's environment. `threads`: a recorded thread count to run with again (con, rerun -f),
    since CPU results differ in their last bits with it; the user's OMP_NUM_THREADS wins."""
    env = {**os.environ, "RUNTAG_ROOT": str(paths.root()), "RUNTAG_LOCKED": "1"}
    env.pop("RUNTAG_NAME_FILE", None)  # for `run` itself (utils/sweep), not for main.py
    if threads and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def die_with_parent(launcher_pid):
    """For Popen's preexec_fn: the child gets SIGTERM when we die, even by SIGKILL, and so ends
    `interrupted` after its last checkpoint instead of training on with nobody to report it."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here, not in the forked child

    def arm():
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != launcher_pid:  # we died before prctl took effect
            os._exit(1)
    return arm
