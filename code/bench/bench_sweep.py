"""Makespan of a sweep against the ideal, for the local pool and for Ray, as a ratio.

    .venv/bin/python code/bench/bench_sweep.py [--runs 16] [--workers 2] [--epochs 1] [--no-ray]

Both sides run the same fixed short job, a real `run` with epochs=1, --runs times on --workers
workers, in a temporary copy of this project. The ideal is the sum of the runs' durations as
the pool saw them (start of the subprocess to its exit), divided by the workers: a pool that
never idles a worker and adds no overhead between runs. A ratio of 1.00 is that ideal.
Ray: a local instance with --workers CPUs, started before the clock starts (a cluster is
already up when a sweep is sent to it); its workers' start-up is counted.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from scratch import project


def measure(pool, tag, a):
    """(makespan, ideal) of --runs runs of the job on the pool."""
    from utils import gitrepo
    from utils.sweep import drive, verb
    from utils.sweep.job import Job
    repo = gitrepo.open_repo()
    gitrepo.ensure_tag(repo, tag, repo.head.commit.hexsha)
    jobs = [Job({"epochs": a.epochs, "device": "cpu"}) for _ in range(a.runs)]
    args = SimpleNamespace(f=False, tag=tag)
    start = time.perf_counter()
    drive.drive(pool, jobs, lambda combination: verb.command(args, combination))
    makespan = time.perf_counter() - start
    failed = [job for job in jobs if job.rc != 0]
    if failed:
        sys.exit(f"{len(failed)} runs failed, e.g. {failed[0].name}: {failed[0].why}")
    return makespan, sum(job.seconds for job in jobs) / a.workers


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--no-ray", action="store_true", help="the local pool only")
    a = p.parse_args()
    results = {}
    os.environ.update(CI="true",  # CI: no TensorBoard per run
                      GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
                      GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp))
        os.environ["RUNTAG_ROOT"] = str(root)
        sys.path.insert(0, str(root / "code"))
        from utils.sweep import local, raypool
        local_args = SimpleNamespace(workers=a.workers, per_gpu=None)
        results["local pool"] = measure(local.Pool(local_args, []), "local", a)
        if not a.no_ray:
            ray_args = SimpleNamespace(address="local", workers=a.workers, per_gpu=None)
            results["ray"] = measure(raypool.Pool(ray_args, []), "ray", a)
    print(f"\n{a.runs} runs of `run epochs={a.epochs}` on {a.workers} workers ({os.cpu_count()} CPU cores):")
    for name, (makespan, ideal) in results.items():
        print(f"  {name:<10}  makespan {makespan:6.1f} s   ideal {ideal:6.1f} s   ratio {makespan / ideal:.3f}")


if __name__ == "__main__":
    main()
