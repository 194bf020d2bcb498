"""Listing and resolving runs through the CLI, 10,000 runs against 10, each verb a whole process.

Builds two temporary projects of synthetic statistic.json (bench_table.py's schema: 25
hyperparameters, 10 metrics) plus an empty `lock` in each run folder:
  - big:   1,000 tags x 10 runs (exp0000..exp0999, ids 0..9);
  - small: 1 tag x 10 runs (exp0000).
Then times, as `cli.py VERB ...` subprocesses (RUNTAG_ROOT=<project>, CI=1, stdout to /dev/null):
  - expls, with each tag's summary (__result__/<tag>/.expls.json) from the one before in place;
  - expls cold: the summaries deleted before each timing, so every record is parsed (a first
    listing, or one after every record changed) and the summaries written again;
  - expels exp0500 (small: expels exp0000);
  - record -l bench 'exp*', with __statistic__/exper-list/bench.txt deleted before each timing,
    so every timing appends all the names;
  - table bench, on the list the record timings leave and after one untimed `table`: the title
    file is kept in place, as after a first `table` (table rewrites __statistic__/table/).
and `python -c pass` the same way, the interpreter's start, which no verb can go under.
Wall clock of each whole process, best of REPEAT after one warm-up; within each repeat the order
of big / small / baseline rotates to spread noise. Linear growth shows as big - start staying
small; the targets are <= 0.3 s on the big project for the listing verbs, and <= 30 ms above
`python -c pass` on the small one (expls cold and table are reported only). The same table in
CPU time (user + system of each process) follows: on a loaded machine it is the steadier figure.
Usage: .venv/bin/python code/bench/bench_listing.py [--repeat 5]
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_table import write_records  # the same synthetic records

CLI = Path(__file__).resolve().parents[1] / "utils" / "cli.py"
TARGET = 0.3  # seconds, for expls, expels and record on the big project
FLOOR = 0.030  # seconds above `python -c pass`, for expls, expels and record on the small project


def make(root, tags):
    """tags x 10 run folders, each with its statistic.json (bench_table.py's) and an empty lock."""
    for name in write_records(root, tags * 10):
        (root / "__result__" / name / "lock").touch()


def run(argv, root=None):
    """(wall time, CPU time: user + system) of one whole process; a failure ends the benchmark
    with the verb's stderr. CPU time is what a loaded machine inflates least."""
    env = {**os.environ, "CI": "1", **({"RUNTAG_ROOT": str(root)} if root else {})}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's Python keeps compiled modules: so do we (the first run writes them)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        print(f"{' '.join(map(str, argv[1:]))} exited {done.returncode}:\n{done.stderr.decode()}", file=sys.stderr)
        sys.exit(1)
    return took, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def best_of(repeat, cases):
    """cases: name -> (argv, root, before). One warm-up each, then `repeat` rounds in a rotating
    order. The best wall times, and apart the best CPU times (name + " cpu")."""
    best = {}
    for r in range(-1, repeat):
        names = list(cases)
        for name in names[r % len(names):] + names[:r % len(names)]:
            argv, root, before = cases[name]
            if before:
                before()
            took, cpu = run(argv, root)
            if r >= 0:
                best[name] = min(best.get(name, took), took)
                best[f"{name} cpu"] = min(best.get(f"{name} cpu", cpu), cpu)
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

        def drop_summaries(root):
            return lambda: [p.unlink() for p in root.glob("__result__/*/.expls.json")]

        verbs = {
            "expls": (["expls"], ["expls"], None),
            "expls cold": (["expls"], ["expls"], drop_summaries),
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
        for what, suffix in (("wall clock", ""), ("CPU time (user + system)", " cpu")):
            print(f"10,000 runs (big) vs 10 (small), {os.cpu_count()} cores, best of {repeat}, {what}, seconds")
            print(f"{'verb':10} {'big':>8} {'small':>8} {'-c pass':>8} {'big/small':>10} {'big-start':>10} {'small-start':>12}")
            for verb, t in rows.items():
                big, small, start = (t[k + suffix] for k in ("big", "small", "start"))
                print(f"{verb:10} {big:8.3f} {small:8.3f} {start:8.3f} "
                      f"{big / small:9.2f}x {big - start:10.3f} {small - start:12.3f}")
        for verb in ("expls", "expels", "record"):
            ok = rows[verb]["big"] <= TARGET
            print(f"{verb:10} big {rows[verb]['big']:.3f} s {'<=' if ok else '>'} {TARGET} s target: {'ok' if ok else 'MISSED'}")
        for verb in ("expls", "expels", "record"):
            above = rows[verb]["small"] - rows[verb]["start"]
            ok = above <= FLOOR
            print(f"{verb:10} small {above * 1000:.0f} ms above -c pass {'<=' if ok else '>'} {FLOOR * 1000:.0f} ms "
                  f"target: {'ok' if ok else 'MISSED'}")
        for verb in ("expls cold", "table"):
            print(f"{verb:10} big {rows[verb]['big']:.3f} s (reported, no target)")


if __name__ == "__main__":
    main()
