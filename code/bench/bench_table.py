"""`table` against a bare json -> csv loop: N records in one process, or whole processes.

Writes N synthetic statistic.json (DESIGN.md's schema: 25 hyperparameters, 10 metrics) under a
temporary __result__/, records them in one list, then times
  - bare:  json.load each file, csv.writer one row each, the same columns as the table;
  - table: what the verb does (utils.statistic.table.write: read, CSV, the aligned text) with
           stdout a terminal of 50 lines (a pty: the rows that fit), with the title file in place,
           as after a first `table`;
  - piped: the same with stdout /dev/null (no terminal: every row printed aligned);
  - first: `table` when the title file is still missing (it is built first).
In one process (default N 10,000): best of REPEAT each. `--whole N` (e.g. 100000): each a fresh
process (`python -c` of the bare loop; `cli.py table`), ROUNDS (env, default 5) paired rounds,
medians of the wall time, the CPU time and the peak RSS of each process (os.wait4).
Usage: python code/bench/bench_table.py [N] | --whole N
"""
import contextlib
import csv
import json
import os
import pty
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/

from utils.statistic import record, table, title  # noqa: E402

REPEAT = 3
ROUNDS = int(os.environ.get("ROUNDS", 5))
CODE = Path(__file__).resolve().parents[1]
LINES = "50"  # the terminal's height


def hparams(rng):
    """25 keys, like config.py's: 8 vary between runs, the rest are the same everywhere."""
    return {
        "data": "digits", "val_ratio": 0.15, "test_ratio": 0.15, "split_seed": 0,
        "model": rng.choice(["cnn", "mlp", "resnet"]), "channels": rng.choice([16, 32, 64]),
        "dropout": rng.choice([0.0, 0.1, 0.25, 0.5]), "optimizer": rng.choice(["adam", "adamw", "sgd"]),
        "lr": rng.choice([1e-4, 3e-4, 1e-3, 3e-3, 1e-2]), "momentum": 0.9,
        "weight_decay": rng.choice([0.0, 1e-4, 5e-4]), "lr_schedule": "cosine", "lr_step": 10, "lr_gamma": 0.1,
        "epochs": rng.choice([20, 40]), "batch_size": rng.choice([32, 64, 128]),
        "best_metric": "val/acc", "best_mode": "max", "patience": 0, "checkpoint_every": 1,
        "keep_checkpoints": 2, "device": "cuda", "num_workers": 4, "tensorboard": True, "cuda": True,
    }


def metrics(rng):
    """10 keys, as recorder.py writes them."""
    acc = rng.uniform(0.8, 0.99)
    return {"last/train_loss": rng.uniform(0, 1), "last/train_acc": acc + 0.01, "last/val_loss": rng.uniform(0, 1),
            "last/val_acc": acc, "best/train_loss": rng.uniform(0, 1), "best/train_acc": acc + 0.01,
            "best/val_loss": rng.uniform(0, 1), "best/val_acc": acc + 0.002, "best/epoch": rng.randint(1, 40),
            "test/acc": acc - 0.01}


def make(root, n):
    """n run folders, 10 ids per tag, and the list `bench` naming them all."""
    names = write_records(root, n)
    record.list_path("bench").parent.mkdir(parents=True, exist_ok=True)
    record.list_path("bench").write_text("\n".join(names) + "\n")
    return names


def write_records(root, n):
    """n run folders under root/__result__ (tags exp0000, exp0001, ..., ids 0..9), each with its
    statistic.json; their names. Also bench_listing.py's."""
    rng = random.Random(0)
    names = []
    for i in range(n):
        tag, id = f"exp{i // 10:04d}", i % 10
        folder = root / "__result__" / tag / str(id)
        folder.mkdir(parents=True)
        hp = hparams(rng)
        rec = {
            "version": 1, "tag": tag, "id": id, "status": "finished", "commit": f"{i:040x}",
            "command": f"run {tag} lr={hp['lr']}", "seed": rng.randrange(2**31), "fixed_seed": False,
            "overrides": {"lr": hp["lr"], "batch_size": hp["batch_size"]}, "hparams": hp, "metrics": metrics(rng),
            "epoch": hp["epochs"], "epochs": hp["epochs"], "start": "2026-11-22T10:00:00+00:00",
            "end": "2026-11-22T10:20:00+00:00", "duration_s": rng.uniform(100, 2000), "host": "node3",
            "gpus": "0", "pid": 4242, "world_size": 1, "parent": None,
            "versions": {"python": "3.11.7", "torch": "2.13.0"},
        }
        (folder / "statistic.json").write_text(json.dumps(rec, indent=2) + "\n")
        names.append(f"{tag}/{id}")
    return names


def bare(root, names, hp_keys, metric_keys, out):
    """The floor: read each record, write its row."""
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "status", *hp_keys, *metric_keys])
        for name in names:
            with open(root / "__result__" / name / "statistic.json") as g:
                rec = json.load(g)
            hp, m = rec["hparams"], rec["metrics"]
            writer.writerow([name, rec["status"], *[hp.get(k) for k in hp_keys], *[m.get(k) for k in metric_keys]])


BARE = """
import csv, json, sys
root, out, cols = sys.argv[1:4]
names, hp_keys, metric_keys = json.load(open(cols))
with open(out, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["run", "status", *hp_keys, *metric_keys])
    for name in names:
        with open(root + "/__result__/" + name + "/statistic.json") as g:
            rec = json.load(g)
        hp, m = rec["hparams"], rec["metrics"]
        writer.writerow([name, rec["status"], *[hp.get(k) for k in hp_keys], *[m.get(k) for k in metric_keys]])
"""


@contextlib.contextmanager
def terminal():
    """A pty as stdout (its other end drained), LINES tall."""
    master, slave = pty.openpty()
    drain = threading.Thread(target=lambda: drained(master), daemon=True)
    drain.start()
    old = os.environ.get("LINES")
    os.environ["LINES"] = LINES
    try:
        with open(slave, "w", closefd=False) as out:
            yield out
    finally:
        os.close(slave)
        drain.join(5)
        os.close(master)
        os.environ.pop("LINES") if old is None else os.environ.__setitem__("LINES", old)


def drained(fd):
    try:
        while os.read(fd, 1 << 16):
            pass
    except OSError:  # the slave side closed
        pass


def process(argv, stdout):
    """(seconds, peak RSS in MiB, CPU seconds) of one process."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL, env={**os.environ, "LINES": LINES})
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, argv
    return time.perf_counter() - start, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def whole(n):
    """Fresh processes, paired rounds: the bare loop, `table` in a terminal, `table` piped."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["RUNTAG_ROOT"] = tmp
        names = make(root, n)
        cli = [sys.executable, str(CODE / "utils" / "cli.py"), "table", "bench"]
        subprocess.run(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # the title
        cols = root / "cols.json"
        cols.write_text(json.dumps([names, *title.columns("bench")]))
        bare_argv = [sys.executable, "-c", BARE, tmp, str(root / "bare.csv"), str(cols)]
        seen = {"bare": [], "table": [], "piped": []}
        for _ in range(ROUNDS):
            seen["bare"].append(process(bare_argv, subprocess.DEVNULL))
            master, slave = pty.openpty()
            drain = threading.Thread(target=drained, args=(master,), daemon=True)
            drain.start()
            seen["table"].append(process(cli, slave))
            os.close(slave)
            drain.join(5)
            os.close(master)
            seen["piped"].append(process(cli, subprocess.DEVNULL))
        median = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in seen.items()}
        print(f"{n} records, whole processes, {os.cpu_count()} cores, median of {ROUNDS} paired rounds")
        for key, label in (("bare", "bare json->csv loop"), ("table", f"table, terminal ({LINES} lines)"),
                           ("piped", "table, piped (all rows)")):
            t, m, cpu = median[key]
            ratio = "" if key == "bare" else f"   ratio {t / median['bare'][0]:.2f}x, CPU {cpu / median['bare'][2]:.2f}x"
            print(f"{label:28s} {t:7.3f} s  {cpu:7.3f} s CPU  {m:7.1f} MiB peak{ratio}")


def best_of(fn, before=None):
    times = []
    for _ in range(REPEAT):
        if before:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    if sys.argv[1:2] == ["--whole"]:
        return whole(int(sys.argv[2]))
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as null:
        root = Path(tmp)
        os.environ["RUNTAG_ROOT"] = tmp
        names = make(root, n)

        def build(out=None):
            with contextlib.redirect_stdout(out or null), contextlib.redirect_stderr(null):
                table.write("bench")

        def shown():
            with terminal() as out:
                build(out)

        first = best_of(shown, before=lambda: title.path("bench").unlink(missing_ok=True))
        hp_keys, metric_keys = title.columns("bench")  # what the table shows: the hparams that vary
        floor = best_of(lambda: bare(root, names, hp_keys, metric_keys, root / "bare.csv"))
        built = best_of(shown)
        piped = best_of(build)
        rows = sum(1 for _ in open(record.list_path("bench").parent.parent / "table/bench.csv")) - 1
        assert rows == n == sum(1 for _ in open(root / "bare.csv")) - 1
        print(f"{n} records, {2 + len(hp_keys) + len(metric_keys)} columns, {os.cpu_count()} cores, best of {REPEAT}")
        print(f"bare json->csv loop     {floor:6.3f} s")
        print(f"table, terminal         {built:6.3f} s   ratio {built / floor:.2f}x")
        print(f"table, piped (all rows) {piped:6.3f} s   ratio {piped / floor:.2f}x")
        print(f"table, no title yet     {first:6.3f} s   ratio {first / floor:.2f}x")


if __name__ == "__main__":
    main()
