"""Samples per second of one run on 1 and on 2 processes (DDP), the same job, as a scaling ratio.

    .venv/bin/python code/bench/bench_ddp.py [--epochs 8] [--batch-size 256] [--nproc 2]

Both sides are real `run`s in a temporary copy of this project (CPU: gloo; on a GPU machine:
NCCL, one process per GPU). The figure per run is the median of the TensorBoard scalar
`time/samples_per_s` the run recorded per epoch (the first epoch, a warm-up, left out);
the sides alternate over --rounds and the best of each counts (the machine is shared).
Ideal scaling is nproc; on 2 CPU cores the two processes share the cores one process used.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from scratch import IDENTITY, project

def samples_per_s(root, tag, nproc, epochs, batch_size):
    env = {**os.environ, "CI": "true", **IDENTITY}
    subprocess.run([sys.executable, "code/utils/cli.py", "run", "-f", tag, "--nproc", str(nproc),
                    f"epochs={epochs}", f"batch_size={batch_size // nproc}"],  # same global batch
                   cwd=root, env=env, check=True, capture_output=True)
    events = EventAccumulator(str(root / "__result__" / tag / "0" / "tensorboard"))
    events.Reload()
    return statistics.median(s.value for s in events.Scalars("time/samples_per_s")[1:])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=256, help="global: split over the processes")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="the sides alternate; the best of each counts")
    a = p.parse_args()
    one, many = [], []
    for r in range(a.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            root = project(Path(tmp))
            one.append(samples_per_s(root, "one", 1, a.epochs, a.batch_size))
            many.append(samples_per_s(root, "many", a.nproc, a.epochs, a.batch_size))
    one, many = max(one), max(many)
    print(f"1 process: {one:,.0f} samples/s   {a.nproc} processes: {many:,.0f} samples/s   "
          f"scaling {many / one:.2f}x (ideal {a.nproc}x) on {os.cpu_count()} CPU cores")


if __name__ == "__main__":
    main()
