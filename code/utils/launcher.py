"""Start a run's processes: main.py itself, or torch.distributed.run over main.py for several."""
import os
import signal
import subprocess
import sys

from utils import paths, runs


def processes(nproc):
    """Default: one per visible GPU, else one."""
    if nproc:
        return nproc
    import torch
    return max(torch.cuda.device_count(), 1)


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
    if rc != 0 and not stopped and run_dir and (nproc > 1 or nnodes > 1):
        failed(run_dir)
    return rc if rc >= 0 else 128 - rc


def failed(run_dir):
    """A rank crashed and the launcher stopped the others: the run failed, whatever rank 0 wrote."""
    record = runs.read(run_dir)
    if record and record["status"] in ("running", "interrupted"):
        record.update(status="failed", end=runs.now())
        runs.write(run_dir, record)
