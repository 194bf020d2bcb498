"""Start a run's processes: main.py itself, or torch.distributed.run over main.py for several."""
import ctypes
import os
import shutil
import signal
import subprocess
import sys

from utils import paths, runlock, runs

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def processes(nproc):
    """Default: one per visible GPU, else one. Counted without importing torch (a second of
    start-up during which a Ctrl-C would find no one to record it)."""
    if nproc:
        return nproc
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return max(len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"]), 1)
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
        return max(sum(line.startswith("GPU ") for line in listed.splitlines()), 1)
    return 1


def command(checkout, run_dir, resume, nproc, nnodes=1, node_rank=0, master=None):
    main = [str(checkout / "code" / "main.py")]
    main += ["--run-dir", str(run_dir)] if run_dir else []  # other nodes get it from rank 0
    main += ["--resume"] if resume else []
    if nproc == 1 and nnodes == 1:
        return [sys.executable, *main]
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--nnodes={nnodes}"]
    if nnodes == 1:
        launcher.append("--standalone")  # a rendezvous on a free local port
    else:
        host, _, port = master.rpartition(":")
        launcher += [f"--node-rank={node_rank}", f"--master-addr={host}", f"--master-port={port}"]
    return [*launcher, *main]


def execute(checkout, run_dir, resume=False, nproc=None, nnodes=1, node_rank=0, master=None, threads=None):
    """Run and wait. The run's processes get a process group of their own, and SIGINT/SIGTERM
    reach them once, through us: each ends as `interrupted` after its last checkpoint is safe.
    They hold the run folder's lock (utils/runlock.py) and stop the same way if we are killed."""
    nproc = processes(nproc)
    cmd = command(checkout, run_dir, resume, nproc, nnodes, node_rank, master)
    env = environment(threads)
    lock = [runlock.acquire(run_dir, run_dir.parent.name + "/" + run_dir.name)] if run_dir else []
    stopped, child = [], []

    def forward(signum, frame):
        stopped.append(signum)
        if child:
            os.killpg(child[0].pid, signum)

    # Before the child exists: a Ctrl-C from here on is never lost. A closed terminal (SIGHUP)
    # stops nothing: we and the run (which inherits the ignoring) go on; the run's log keeps it all.
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        if not stopped:
            child.append(subprocess.Popen(cmd, env=env, process_group=0, pass_fds=lock,
                                          preexec_fn=die_with_parent(os.getpid())))
            if stopped:  # arrived while it was being started
                os.killpg(child[0].pid, stopped[0])
        rc = child[0].wait() if child else 128 + stopped[0]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child:
            kill_group(child[0].pid)  # nothing of the run outlives it
    if stopped and rc != 0:  # stopped before the run could say so itself (Python still starting, say)
        if run_dir:
            conclude(run_dir, "interrupted", ("running",))
        return 128 + stopped[0]
    if run_dir and rc not in (0, 2) and (nproc > 1 or nnodes > 1):  # a rank crashed (2: a mistake, said by rank 0)
        conclude(run_dir, "failed", ("running", "interrupted"))
    return rc if rc >= 0 else 128 - rc


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def environment(threads):
    """The run's environment. `threads`: a recorded thread count to run with again (con, rerun -f),
    since CPU results differ in their last bits with it; the user's OMP_NUM_THREADS wins."""
    env = {**os.environ, "RUNTAG_ROOT": str(paths.root()), "RUNTAG_LOCKED": "1"}
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


def conclude(run_dir, status, unless_now):
    """Set the status the run's processes could not record, when the record still says one of `unless_now`."""
    record = runs.read(run_dir)
    if record and record["status"] in unless_now:
        record.update(status=status, end=runs.now())
        runs.write(run_dir, record)
