"""A sweep as a Slurm job array: the submission's overhead and the array's makespan, as ratios.

    bash code/tests/slurm/start.sh   # a one-node Slurm on this machine (as root), then:
    .venv/bin/python code/bench/bench_slurm.py [--runs 16] [--epochs 1]

In a temporary copy of this project, the same --runs runs of `run epochs=E` (a sweep file of
--runs seeds) go three ways, one after the other:
  - `sweep --backend slurm`: the time from the command's start to every task in the queue (the
    submission overhead), against a bare `sbatch --array` of --runs empty tasks; and the time
    from the command's start to every run finished (the makespan).
  - the local pool, `sweep --workers S` (S: the node's slots, 1 CPU a run): the same work
    without a scheduler. Its makespan, and its ideal (the sum of its runs' durations / S), are
    what the array's makespan is measured against.
Every run gets OMP_NUM_THREADS=1 on both sides: one core each, as the node gives it.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratch import IDENTITY, project


def queued(array):
    out = subprocess.run(["squeue", "-h", "-r", "-j", array, "-o", "%i"], capture_output=True, text=True).stdout
    return len(out.split())


def finished(root, tag, runs):
    base = root / "__result__" / tag
    return sum('"status": "finished"' in (p / "statistic.json").read_text()
               for p in base.iterdir() if (p / "statistic.json").exists()) if base.is_dir() else 0


def bare_submit(runs, folder):
    start = time.perf_counter()
    out = subprocess.run(["sbatch", "--parsable", f"--array=0-{runs - 1}", "--hold", "-o", f"{folder}/bare_%A_%a",
                          "--wrap", "true"], capture_output=True, text=True, check=True).stdout.strip()
    while queued(out) < runs:
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    subprocess.run(["scancel", out], check=True)
    return seconds


def slurm_sweep(root, env, a):
    cli = [sys.executable, "code/utils/cli.py", "sweep", "array", "code/sweeps/bench.yaml", "--backend", "slurm",
           "--time", "30"]
    start = time.perf_counter()
    out = subprocess.run(cli, cwd=root, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stdout + out.stderr)
    array = next(l for l in out.stdout.splitlines() if "as Slurm job" in l).split("as Slurm job ")[1].split()[0]
    exited = time.perf_counter() - start
    while queued(array) < a.runs and finished(root, "array", a.runs) == 0:
        time.sleep(0.01)
    submitted = time.perf_counter() - start
    while finished(root, "array", a.runs) < a.runs:
        time.sleep(0.1)
    return exited, submitted, time.perf_counter() - start


def local_sweep(root, env, slots):
    cli = [sys.executable, "code/utils/cli.py", "sweep", "pool", "code/sweeps/bench.yaml", "--workers", str(slots)]
    start = time.perf_counter()
    out = subprocess.run(cli, cwd=root, env=env, capture_output=True, text=True)
    makespan = time.perf_counter() - start
    if out.returncode:
        sys.exit(out.stdout + out.stderr)
    durations = [float(l.rsplit("(", 1)[1].split()[0]) for l in out.stdout.splitlines() if l.startswith("DONE")]
    return makespan, sum(durations) / slots


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=16)
    p.add_argument("--epochs", type=int, default=1)
    a = p.parse_args()
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode:
        sys.exit("no Slurm answers here: start one with `bash code/tests/slurm/start.sh` (as root)")
    slots = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True).stdout.split()[0])
    env = {**os.environ, **IDENTITY, "CI": "true", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp))
        lrs = [round(1e-3 * (1 + k / a.runs), 6) for k in range(a.runs)]  # --runs distinct combinations
        (root / "code/sweeps/bench.yaml").write_text(f"default: {{epochs: {a.epochs}}}\n---\nlr: {lrs}\n")
        for cmd in (["add", "-A"], ["commit", "-qm", "bench sweep"]):
            subprocess.run(["git", *cmd], cwd=root, check=True, env=env)
        bare = bare_submit(a.runs, tmp)
        exited, submitted, makespan = slurm_sweep(root, env, a)
        pool, ideal = local_sweep(root, env, slots)
    print(f"\n{a.runs} runs of `run epochs={a.epochs}`, a one-node Slurm of {slots} CPUs ({os.cpu_count()} cores):")
    print(f"  submission  sweep --backend slurm: exits after {exited:.2f} s, all {a.runs} queued after {submitted:.2f} s;"
          f" bare sbatch --array {bare:.3f} s   ratio {submitted / bare:.1f}")
    print(f"  makespan    array {makespan:.1f} s   local pool ({slots} workers) {pool:.1f} s   ratio {makespan / pool:.3f}")
    print(f"              array against the ideal (the pool's run durations / {slots}: {ideal:.1f} s)"
          f"   ratio {makespan / ideal:.3f}")


if __name__ == "__main__":
    main()
