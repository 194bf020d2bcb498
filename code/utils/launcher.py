"""Start a run's processes: main.py itself, or torch.distributed.run over main.py for several."""
import os
import shutil
import signal
import subprocess
import sys

from utils import paths, runs


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


def execute(checkout, run_dir, resume=False, nproc=None, nnodes=1, node_rank=0, master=None):
    """Run and wait. The run's processes get a process group of their own, and SIGINT/SIGTERM
    reach them once, through us: each ends as `interrupted` after its last checkpoint is safe."""
    nproc = processes(nproc)
    cmd = command(checkout, run_dir, resume, nproc, nnodes, node_rank, master)
    env = {**os.environ, "RUNTAG_ROOT": str(paths.root())}
    child = subprocess.Popen(cmd, env=env, process_group=0)
    stopped = []

    def forward(signum, frame):
        stopped.append(signum)
        os.killpg(child.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            os.killpg(child.pid, signal.SIGKILL)  # nothing of the run outlives it
        except ProcessLookupError:
            pass
    if run_dir and rc != 0:
        if stopped:  # stopped before the run could say so itself (still importing, say)
            conclude(run_dir, "interrupted", ("running",))
        elif nproc > 1 or nnodes > 1:  # a rank crashed and the launcher stopped the others
            conclude(run_dir, "failed", ("running", "interrupted"))
    return rc if rc >= 0 else 128 - rc


def conclude(run_dir, status, unless_now):
    """Set the status the run's processes could not record, when the record still says one of `unless_now`."""
    record = runs.read(run_dir)
    if record and record["status"] in unless_now:
        record.update(status=status, end=runs.now())
        runs.write(run_dir, record)
