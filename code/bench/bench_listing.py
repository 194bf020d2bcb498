"""Listing and resolving runs through the CLI, 10,000 runs against 10, each verb a whole process.

Builds two temporary projects of synthetic statistic.json (bench_table.py's schema: 25
hyperparameters, 10 metrics) plus an empty `lock` in each run folder:
  - big:   1,000 tags x 10 runs (exp0000..exp0999, ids 0..9);
  - small: 1 tag x 10 runs (exp0000).
Then times, as `cli.py VERB ...` subprocesses (RUNTAG_ROOT=<project>, CI=1, stdout to /dev/null):
  - expls;
  - expels exp0500 (small: expels exp0000);
  - record -l bench 'exp*', with __statistic__/exper-list/bench.txt deleted before each timing,
    so every timing appends all the names;
  - table bench, on the list the record timings leave and after one untimed `table`: the title
    file is kept in place, as after a first `table` (table rewrites __statistic__/table/).
and `python -c pass` the same way, the interpreter's start, which no verb can go under.
Wall clock of each whole process, best of REPEAT after one warm-up; within each repeat the order
of big / small / baseline rotates to spread noise. Linear growth shows as big - start staying
small; the target is <= 0.3 s on the big project for the listing verbs (table is reported only).
Usage: .venv/bin/python code/bench/bench_listing.py [--repeat 5]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_table import write_records  # the same synthetic records

CLI = Path(__file__).resolve().parents[1] / "utils" / "cli.py"
TARGET = 0.3  # seconds, for expls, expels and record on the big project


def make(root, tags):
    """tags x 10 run folders, each with its statistic.json (bench_table.py's) and an empty lock."""
    for name in write_records(root, tags * 10):
        (root / "__result__" / name / "lock").touch()


def run(argv, root=None):
    """Wall time of one whole process; a failure ends the benchmark with the verb's stderr."""
    env = {**os.environ, "CI": "1", **({"RUNTAG_ROOT": str(root)} if root else {})}
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    took = time.perf_counter() - start
    if done.returncode:
        print(f"{' '.join(map(str, argv[1:]))} exited {done.returncode}:\n{done.stderr.decode()}", file=sys.stderr)
        sys.exit(1)
    return took


def best_of(repeat, cases):
    """cases: name -> (argv, root, before). One warm-up each, then `repeat` rounds in a rotating order."""
    best = {}
    for r in range(-1, repeat):
        names = list(cases)
        for name in names[r % len(names):] + names[:r % len(names)]:
            argv, root, before = cases[name]
            if before:
                before()
            took = run(argv, root)
            if r >= 0:
                best[name] = min(best.get(name, took), took)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="timed runs per case, best kept (default 5)")
    repeat = p.parse_args().repeat
    cli = [sys.executable, str(CLI)]
    with tempfile.TemporaryDirectory() as tb, tempfile.TemporaryDirectory() as ts:
        big, small = Path(tb), Path(ts)
        make(big, 1000)
        make(small, 1)

        def drop_list(root):
            return lambda: (root / "__statistic__" / "exper-list" / "bench.txt").unlink(missing_ok=True)

        verbs = {
            "expls": (["expls"], ["expls"], None),
            "expels": (["expels", "exp0500"], ["expels", "exp0000"], None),
            "record": (["record", "-l", "bench", "exp*"],) * 2 + (drop_list,),
            "table": (["table", "bench"],) * 2 + (None,),
        }
        rows = {}
        for verb, (args_big, args_small, before) in verbs.items():
            if verb == "table":  # the list (record's last timing left it) and the title file in place
                for root in (big, small):
                    run(cli + ["table", "bench"], root)
            rows[verb] = best_of(repeat, {
                "big": (cli + args_big, big, before and before(big)),
                "small": (cli + args_small, small, before and before(small)),
                "start": ([sys.executable, "-c", "pass"], None, None),
            })
        print(f"10,000 runs (big) vs 10 (small), {os.cpu_count()} cores, best of {repeat}, seconds")
        print(f"{'verb':8} {'big':>8} {'small':>8} {'-c pass':>8} {'big/small':>10} {'big-start':>10}")
        for verb, t in rows.items():
            print(f"{verb:8} {t['big']:8.3f} {t['small']:8.3f} {t['start']:8.3f} "
                  f"{t['big'] / t['small']:9.2f}x {t['big'] - t['start']:10.3f}")
        for verb in ("expls", "expels", "record"):
            ok = rows[verb]["big"] <= TARGET
            print(f"{verb:8} big {rows[verb]['big']:.3f} s {'<=' if ok else '>'} {TARGET} s target: {'ok' if ok else 'MISSED'}")
        print(f"table    big {rows['table']['big']:.3f} s (reported, no target)")


if __name__ == "__main__":
    main()
