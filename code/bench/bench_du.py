"""`du` over 10,000 runs as a whole process, against coreutils' `du -s` of the same tree.

Builds a temporary project of 1,000 tags x 10 runs (bench_table.py's statistic.json), each run
folder as a run leaves it: a log, an empty lock, tensorboard/ with one event file, checkpoint/
with two small epoch files and the epoch_last/epoch_best links. Then times, as subprocesses,
`cli.py du --by tag` (RUNTAG_ROOT=<project>, stdout to /dev/null) and `du -s __result__`, best
of REPEAT after one warm-up each, the order rotating within each repeat; prints both, and the
ratio (the target: the README's figure). The tree is in the page cache for both: the same work.
Usage: .venv/bin/python code/bench/bench_du.py [--repeat 5] [--tags 1000]
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench_listing import run
from bench_table import write_records

CLI = Path(__file__).resolve().parents[1] / "utils" / "cli.py"


def make(root, runs):
    for name in write_records(root, runs):
        folder = root / "__result__" / name
        (folder / "lock").touch()
        (folder / "log").write_text("epoch 1 loss 0.5\n" * 20)
        (folder / "tensorboard").mkdir()
        (folder / "tensorboard" / "events.out.tfevents.1.host").write_bytes(b"\0" * 3000)
        checkpoint = folder / "checkpoint"
        checkpoint.mkdir()
        for epoch in (1, 2):
            (checkpoint / f"epoch_{epoch}.pth").write_bytes(b"\1" * 20000)
        os.symlink("epoch_2.pth", checkpoint / "epoch_last.pth")
        os.symlink("epoch_1.pth", checkpoint / "epoch_best.pth")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tags", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make(root, args.tags * 10)
        commands = {"runtag du --by tag": ([sys.executable, str(CLI), "du", "--by", "tag"], root),
                    "du -s __result__": (["du", "-s", str(root / "__result__")], None)}
        best = {name: float("inf") for name in commands}
        for argv, where in commands.values():
            run(argv, where)  # warm-up: the page cache, compiled modules
        for repeat in range(args.repeat):
            order = list(commands)[repeat % 2:] + list(commands)[:repeat % 2]
            for name in order:
                best[name] = min(best[name], run(*commands[name])[0])
        runs = args.tags * 10
        for name, seconds in best.items():
            print(f"{name:<20} {seconds:7.3f} s  ({runs:,} runs)")
        print(f"ratio {best['runtag du --by tag'] / best['du -s __result__']:.2f}x")


if __name__ == "__main__":
    main()
