"""The same budget of trials spent three ways on one space: a grid, a random search, and a random
search whose hopeless trials are pruned (successive halving). Epochs spent and best test accuracy.

    .venv/bin/python code/bench/bench_search.py [--epochs 6] [--workers 2]

Space: lr from 1e-5 to 1 (log scale; the low end learns nothing in a few epochs) x channels 8 or 32.
The grid is 5 lrs x 2 channel counts = 10 runs; the searches get 10 trials (-f: fixed seeds).
Each run trains --epochs epochs unless pruned; the best trial is the one with the best val/acc,
and its test/acc is what the method reached. The ratio: epochs the pruned search spent against
the same search unpruned.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratch import IDENTITY, project

SEARCH = "search:\n  method: random\n  trials: 10\n  metric: best/val_acc\n  goal: max\n  prune: {prune}\n  grace: 1\n  eta: 3\n"


def files(epochs):
    default = f"default:\n  epochs: {epochs}\n---\n"
    return {
        "grid": f"{default}lr: [1.0e-5, 1.0e-4, 1.0e-3, 1.0e-2, 1.0]\nchannels: [8, 32]\n",
        "random": SEARCH.format(prune="none") + default + "lr: loguniform(1e-5, 1.0)\nchannels: [8, 32]\n",
        "pruned": SEARCH.format(prune="asha") + default + "lr: loguniform(1e-5, 1.0)\nchannels: [8, 32]\n",
    }


def outcome(root, tag):
    """(epochs spent, best trial's test/acc, runs, pruned runs)."""
    records = [json.loads(p.read_text()) for p in (root / "__result__" / tag).glob("*/statistic.json")]
    finished = [r for r in records if r["status"] == "finished"]
    best = max(finished, key=lambda r: r["metrics"]["best/val_acc"])
    return sum(r["epoch"] for r in records), best["metrics"]["test/acc"], len(records), \
        sum(r["status"] == "pruned" for r in records)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    env = {**os.environ, **IDENTITY, "CI": "true"}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp))
        for name, text in files(a.epochs).items():
            (root / f"code/sweeps/{name}.yaml").write_text(text)
        for cmd in (["add", "-A"], ["commit", "-qm", "bench searches"]):
            subprocess.run(["git", *cmd], cwd=root, check=True, env=env)
        for name in ("grid", "random", "pruned"):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "code/utils/cli.py", "sweep", "-f", name, f"code/sweeps/{name}.yaml",
                                  "--workers", str(a.workers)], cwd=root, env=env, capture_output=True, text=True)
            if out.returncode:
                sys.exit(out.stdout[-3000:] + out.stderr[-3000:])
            results[name] = (*outcome(root, name), time.perf_counter() - start)
    print(f"\n10 runs each, {a.epochs} epochs a run unless pruned, {a.workers} workers:")
    for name, (epochs, acc, n, pruned) in ((k, v[:4]) for k, v in results.items()):
        print(f"  {name:<7} epochs spent {epochs:3d}   best trial's test/acc {acc:.4f}   "
              f"({n} runs, {pruned} pruned, {results[name][4]:.0f} s)")
    full, pruned = results["random"][0], results["pruned"][0]
    print(f"  pruning spent {pruned} of {full} epochs: ratio {pruned / full:.2f} ({1 - pruned / full:.0%} saved)")


if __name__ == "__main__":
    main()
