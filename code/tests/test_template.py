"""The template end to end: real runs through the CLI in temporary git repositories."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/: the template's modules

from conftest import Progress, communicate, learned, wait_for  # noqa: E402
from utils.checkpoints import load as load_checkpoint  # noqa: E402

PYTHON = sys.executable

# statistic.json, version 1: every key of DESIGN.md's schema
SCHEMA = {"version", "tag", "id", "status", "commit", "command", "seed", "fixed_seed", "overrides",
          "hparams", "metrics", "epoch", "epochs", "start", "end", "duration_s", "host", "gpus", "pid",
          "world_size", "parent", "versions"}


def tree(directory):
    """Every path under a folder, relative, folders with a trailing /."""
    return sorted(str(p.relative_to(directory)) + ("/" if p.is_dir() and not p.is_symlink() else "")
                  for p in directory.rglob("*"))


def poll_record(path, until, timeout=None):
    """Read statistic.json until `until(record)`; every read must parse (it is replaced atomically).
    `timeout`: how long the run may go without progress (conftest.Progress)."""
    progress = Progress(timeout)
    while not progress.stalled():
        if path.exists():
            record = json.loads(path.read_text())
            if until(record):
                return record
        time.sleep(0.02)
    raise AssertionError(f"{path} never satisfied the condition")


def weights(path):
    return load_checkpoint(path)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def demo(shared_project):
    """Two fixed-seed runs of one tag at one commit: demo/0 and demo/1."""
    for _ in range(2):
        shared_project.cli("run", "-f", "demo", "epochs=2", "checkpoint_interval=0", check=True)
    return shared_project


def test_run_folder_layout(demo):
    run = demo.run_dir("demo", 0)
    events = [p.name for p in (run / "tensorboard").iterdir()]
    assert events and all(name.startswith("events.out.tfevents.") for name in events)
    assert tree(run) == sorted(["lock", "log", "statistic.json", "tensorboard/", "checkpoint/",
                                "checkpoint/epoch_1.pth", "checkpoint/epoch_2.pth",
                                "checkpoint/epoch_last.pth", "checkpoint/epoch_best.pth"]
                               + [f"tensorboard/{name}" for name in events])
    best = demo.record("demo", 0)["metrics"]["best/epoch"]
    for link, target in (("epoch_last.pth", "epoch_2.pth"), ("epoch_best.pth", f"epoch_{best}.pth")):
        assert os.readlink(run / "checkpoint" / link) == target  # relative, beside it
    assert load_checkpoint(run / "checkpoint" / "epoch_last.pth")["epoch"] == 2


def test_statistic_json_has_the_schema(demo):
    record = demo.record("demo", 0)
    assert SCHEMA <= set(record)
    assert record["version"] == 1 and record["status"] == "finished"
    assert (record["tag"], record["id"], record["epoch"], record["epochs"]) == ("demo", 0, 2, 2)
    assert record["commit"] == demo.git("rev-parse", "HEAD")
    assert record["command"] == "run -f demo epochs=2 checkpoint_interval=0"
    assert record["overrides"] == {"epochs": 2, "checkpoint_interval": 0.0} and record["hparams"]["epochs"] == 2
    assert record["seed"] == int((demo.root / "code/seed").read_text()) and record["fixed_seed"] is True
    assert 0 <= record["metrics"]["test/acc"] <= 1 and record["metrics"]["best/epoch"] in (1, 2)
    assert record["end"] is not None and record["duration_s"] > 0


def test_finished_list_log_and_tag(demo):
    finished = (demo.root / "__statistic__/exper-list/finished.txt").read_text().splitlines()
    assert "demo/0" in finished and "demo/1" in finished
    log = (demo.run_dir("demo", 0) / "log").read_text()
    assert "epoch 1/2" in log and "epoch 2/2" in log and "test (best epoch " in log
    assert "\r" not in log and "it/s" not in log and "train:" not in log, "a progress bar got into the log"
    assert demo.git("cat-file", "-t", "demo") == "tag"  # annotated, not lightweight
    assert demo.git("rev-parse", "demo^{commit}") == demo.git("rev-parse", "HEAD")


def test_tensorboard_scalars_per_epoch_on_the_step_axis(demo):
    events = EventAccumulator(str(demo.run_dir("demo", 0) / "tensorboard"))
    events.Reload()
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "lr", "epoch", "time/evaluation_s",
                "time/samples_per_s", "memory/peak_mb"):
        assert [s.step for s in events.Scalars(key)] == [20, 40], key  # optimizer steps: 20 an epoch
    assert [s.value for s in events.Scalars("epoch")] == [1, 2]
    assert events.Scalars("val/acc")[-1].value == pytest.approx(demo.record("demo", 0)["metrics"]["last/val_acc"])


def test_fixed_seed_is_bit_identical(demo):
    a, b = demo.record("demo", 0), demo.record("demo", 1)
    assert a["seed"] == b["seed"] and a["commit"] == b["commit"]
    assert learned(a) == learned(b)  # JSON floats round-trip exactly: equal means bit-identical
    assert_same_weights(weights(demo.run_dir("demo", 0) / "checkpoint/epoch_2.pth"),
                        weights(demo.run_dir("demo", 1) / "checkpoint/epoch_2.pth"))


def test_unfixed_seed_is_drawn(demo):
    demo.cli("run", "demo", "epochs=1", check=True)
    record = demo.record("demo", 2)
    fixed = demo.record("demo", 0)["seed"]
    assert record["fixed_seed"] is False and record["seed"] != fixed
    assert record["status"] == "finished"


def test_statistic_is_always_parseable_during_a_run(project):
    path = project.run_dir("poll", 0) / "statistic.json"
    proc = project.start("run", "-f", "poll", "epochs=10")
    reads, epochs = 0, set()
    while proc.poll() is None:
        if path.exists():
            record = json.loads(path.read_text())  # never half-written
            epochs.add(record["epoch"])
            reads += 1
        time.sleep(0.01)  # leave the CPU to the run
    out, err = proc.communicate()
    assert proc.returncode == 0, out + err
    assert reads > 50 and len(epochs) >= 5, (reads, epochs)  # we did watch it change
    assert json.loads(path.read_text())["status"] == "finished"


@pytest.mark.slow
def test_resume_from_checkpoint_is_identical(project):
    project.cli("run", "-f", "a", "epochs=4", "keep_checkpoints=0", "checkpoint_interval=0", check=True)
    full = project.run_dir("a", 0)
    # a second run of the same tag, as if it had stopped after epoch 2
    cut = project.run_dir("a", 1)
    shutil.copytree(full, cut, symlinks=True)
    ckpt = cut / "checkpoint"
    for n in (3, 4):
        (ckpt / f"epoch_{n}.pth").unlink()
    best_epoch = load_checkpoint(ckpt / "epoch_2.pth")["best_epoch"]
    for link, name in (("epoch_last.pth", "epoch_2.pth"), ("epoch_best.pth", f"epoch_{best_epoch}.pth")):
        (ckpt / link).unlink()
        os.symlink(name, ckpt / link)
    shutil.rmtree(cut / "tensorboard")
    record = project.record("a", 0)
    record.update(id=1, status="interrupted", epoch=2, metrics={}, end=None)
    (cut / "statistic.json").write_text(json.dumps(record))

    env = {**project.env(), "RUNTAG_ROOT": str(project.root)}
    out = subprocess.run([PYTHON, "code/main.py", "--run-dir", str(cut), "--resume"], cwd=project.root,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "continuing after epoch 2" in out.stdout

    for n in (3, 4):
        a, b = load_checkpoint(full / f"checkpoint/epoch_{n}.pth"), load_checkpoint(ckpt / f"epoch_{n}.pth")
        assert_same_weights(a["model"], b["model"])
        assert (a["best"], a["best_epoch"], a["stale"]) == (b["best"], b["best_epoch"], b["stale"])
        for p, q in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
            assert torch.equal(p["exp_avg"], q["exp_avg"]) and torch.equal(p["exp_avg_sq"], q["exp_avg_sq"])
    resumed, original = project.record("a", 1), project.record("a", 0)
    assert resumed["status"] == "finished" and resumed["epoch"] == 4
    assert {"last/val_acc", "last/train_loss", "test/acc", "test/loss"} <= set(resumed["metrics"])
    assert learned(resumed) == {k: learned(original)[k] for k in learned(resumed)}


@pytest.mark.parametrize("argv, key", [
    (["cli", "run", "x", "lr=-1"], "lr"),
    (["cli", "run", "x", "optimizer=foo"], "optimizer"),
    (["main", "batch_size=0"], "batch_size"),
])
def test_invalid_config_value_is_one_line(project, argv, key):
    script = "code/utils/cli.py" if argv[0] == "cli" else "code/main.py"
    out = subprocess.run([PYTHON, script, *argv[1:]], cwd=project.root, env=project.env(),
                         capture_output=True, text=True)
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("runtag: ") and key in lines[0], out.stderr
    assert not (project.root / "__result__").exists() and not (project.root / "__statistic__").exists()
    assert project.git("tag") == "" and project.git("status", "--porcelain") == ""


def test_failing_experiment_is_recorded(project):
    (project.root / "__data__/missing").mkdir(parents=True)  # a data folder without its data.npz
    out = project.cli("run", "-f", "broken", "data=missing", "epochs=2")
    assert out.returncode != 0
    record = project.record("broken", 0)
    assert record["status"] == "failed" and record["end"] is not None
    log = (project.run_dir("broken", 0) / "log").read_text()
    assert "Traceback (most recent call last)" in log and "missing" in log
    finished = project.root / "__statistic__/exper-list/finished.txt"
    assert not finished.exists() or "broken/0" not in finished.read_text()


def test_a_run_killed_after_its_first_epoch_continues_by_default(project):
    """config.py's checkpoint policy writes at the first evaluation, whatever the clock says (a
    60 s interval used to leave a run killed in its first minute nothing to continue from), and
    then as often as a write costs at most 1% of the training since the one before."""
    run_dir = project.run_dir("early", 0)
    proc = project.start("run", "-f", "early", "epochs=30")
    try:
        wait_for(lambda: (run_dir / "checkpoint/epoch_last.pth").exists(), what="the first checkpoint")
        os.kill(json.loads((run_dir / "statistic.json").read_text())["pid"], signal.SIGKILL)
        communicate(proc)
    finally:
        proc.kill()
    killed_at = load_checkpoint(run_dir / "checkpoint/epoch_last.pth")["epoch"]
    assert 1 <= killed_at < 30 and project.record("early", 0)["status"] == "killed"
    out = project.cli("con", "early/0")
    assert out.returncode == 0, out.stdout + out.stderr
    record = project.record("early", 0)
    assert record["status"] == "finished" and record["epoch"] == 30
    assert f"epoch {killed_at + 1}/30" in (run_dir / "log").read_text()  # went on from where it was


def test_sigterm_ends_as_interrupted(project):
    path = project.run_dir("long", 0) / "statistic.json"
    proc = project.start("run", "-f", "long", "epochs=50")
    try:
        record = poll_record(path, lambda r: r["epoch"] >= 2)
        os.kill(record["pid"], signal.SIGTERM)  # main.py's pid, not the launcher's
        out, err = communicate(proc)
    finally:
        proc.kill()
    assert proc.returncode != 0, out + err
    assert "interrupted by SIGTERM" in out
    record = project.record("long", 0)
    assert record["status"] == "interrupted" and 2 <= record["epoch"] < 50
    last = load_checkpoint(project.run_dir("long", 0) / "checkpoint/epoch_last.pth")
    # written on the way out or at the last evaluation the writes' cost allowed; the
    # signal may land between an epoch's statistic.json update and its snapshot in memory
    assert last["epoch"] in (record["epoch"] - 1, record["epoch"])
    assert "Traceback" not in (project.run_dir("long", 0) / "log").read_text()
