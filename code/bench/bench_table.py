"""`table` over 10,000 run records against a bare json -> csv loop, in one process.

Writes N synthetic statistic.json (DESIGN.md's schema: 25 hyperparameters, 10 metrics) under a
temporary __result__/, records them in one list, then times
  - bare:  json.load each file, csv.writer one row each, the same columns as the table;
  - table: utils.statistic.table.build (reads, DataFrame, CSV, and the aligned text, printed to
           /dev/null), with the title file in place, as after a first `table`;
  - first: the same when the title file is still missing (it is built first, as `table` does).
Best of REPEAT runs each. Usage: python code/bench/bench_table.py [N]
"""
import contextlib
import csv
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/

from utils.statistic import record, table, title  # noqa: E402

REPEAT = 3


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
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as null:
        root = Path(tmp)
        os.environ["RUNTAG_ROOT"] = tmp
        names = make(root, n)

        def build():
            with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                table.build("bench")

        first = best_of(build, before=lambda: title.path("bench").unlink(missing_ok=True))
        hp_keys, metric_keys = title.columns("bench")  # what the table shows: the hparams that vary
        floor = best_of(lambda: bare(root, names, hp_keys, metric_keys, root / "bare.csv"))
        built = best_of(build)
        rows = sum(1 for _ in open(record.list_path("bench").parent.parent / "table/bench.csv")) - 1
        assert rows == n == sum(1 for _ in open(root / "bare.csv")) - 1
        print(f"{n} records, {2 + len(hp_keys) + len(metric_keys)} columns, {os.cpu_count()} cores, best of {REPEAT}")
        print(f"bare json->csv loop     {floor:6.3f} s")
        print(f"table                   {built:6.3f} s   ratio {built / floor:.2f}x")
        print(f"table, no title yet     {first:6.3f} s   ratio {first / floor:.2f}x")


if __name__ == "__main__":
    main()
