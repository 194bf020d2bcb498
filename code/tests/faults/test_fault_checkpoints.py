"""Damaged checkpoints (issue 12, items 4 and 6), made on a real run stopped by Ctrl-C: `con` goes
on from the newest checkpoint that loads and names what it skipped in one warning; with none that
loads it refuses in one line and the run keeps its status; a damaged best checkpoint still lets
the run finish; what killed writes left behind is removed."""
import json
import os
import random
import shutil
import subprocess

import pytest
import torch

from conftest import PYTHON, assert_one_line_mistake, interrupt, learned, make_project, record_at
from utils import checkpoints

RUN = ["epochs=8", "checkpoint_interval=0",  # a file every epoch; 5 epochs of ~0.15 s for the Ctrl-C to land in
       "batch_size=8", "channels=8",
       "keep_checkpoints=0",  # every epoch file stays: there is something to fall back on
       "best_metric=train/loss", "best_mode=max"]  # the best epoch is 1, whatever comes after it


@pytest.fixture(scope="module")
def cut(tmp_path_factory):
    """cut/0 stopped by Ctrl-C after epoch 3 or later, never continued itself (each test damages a
    copy); its epoch; and the metrics of its twin that ran straight through (`rerun -f`: cut/1)."""
    project = make_project(tmp_path_factory.mktemp("checkpoints") / "project")
    run = project.start("run", "-f", "cut", *RUN)
    try:
        record_at(project, "cut", epoch=3)
    finally:
        interrupt(run)
    stopped = project.record("cut", 0)
    assert stopped["status"] == "interrupted" and 3 <= stopped["epoch"] < 8, "the Ctrl-C must land mid-training"
    assert stopped["metrics"]["best/epoch"] == 1
    project.cli("rerun", "-f", "cut/0", check=True)
    return project, stopped["epoch"], learned(project.record("cut", 1))


def copy_of_stopped(project):
    """A copy of cut/0 as the tag's next run (links kept as links): its id and folder."""
    tag = project.root / "__result__" / "cut"
    id = max(int(p.name) for p in tag.iterdir() if p.name.isdigit()) + 1
    shutil.copytree(tag / "0", tag / str(id), symlinks=True)
    record = json.loads((tag / str(id) / "statistic.json").read_text())
    (tag / str(id) / "statistic.json").write_text(json.dumps({**record, "id": id}))
    return id, tag / str(id)


def last_file(run_dir):
    return run_dir / "checkpoint" / os.readlink(run_dir / "checkpoint/epoch_last.pth")


def continuing(path):
    """What main.py says when it goes on from this checkpoint file."""
    epoch, step = checkpoints.position(path.name)
    return f"continuing after epoch {epoch}" + (f", at step {step} of epoch {epoch + 1}" if step else "")


def truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def emptied(path):
    path.write_bytes(b"")


def garbled(path):
    path.write_bytes(random.Random(12).randbytes(path.stat().st_size))


def removed(path):
    path.unlink()


def carrying_code(path):
    """The real checkpoint, plus a function: weights_only refuses to unpickle it."""
    torch.save({**torch.load(path, weights_only=True), "hook": os.system}, path)


def warnings(out):
    assert "Traceback" not in out.stderr and "weights_only" not in out.stderr, out.stderr
    return [line for line in out.stderr.splitlines() if line.startswith("runtag: warning:")]


def finished(project, id, out):
    assert out.returncode == 0, out.stderr
    record = project.record("cut", id)
    assert record["status"] == "finished" and record["epoch"] == 8
    return record


# damage to the checkpoint that epoch_last names -> the reason the warning gives
DAMAGES = {"truncated": (truncated, "truncated"), "empty": (emptied, "empty"),
           "garbage": (garbled, "not a PyTorch checkpoint"), "dangling link": (removed, "missing"),
           "pickled callable": (carrying_code, "carries code: posix.system")}


@pytest.mark.parametrize("damage", DAMAGES)
def test_con_goes_on_from_the_newest_checkpoint_that_loads(cut, damage):
    project, stopped, twin = cut
    id, run_dir = copy_of_stopped(project)
    last = last_file(run_dir)
    assert last == checkpoints.files(run_dir / "checkpoint")[0]  # the newest: a step file or epoch_<stopped>.pth
    assert checkpoints.position(last.name) >= (stopped, 0)
    previous = checkpoints.files(run_dir / "checkpoint")[1]
    hurt, why = DAMAGES[damage]
    hurt(last)
    out = project.cli("con", f"cut/{id}")
    record = finished(project, id, out)
    assert learned(record) == twin, "the continued run must end as if it had never stopped"
    [warning] = warnings(out)
    assert warning.startswith(f"runtag: warning: skipped checkpoint/{last.name} ({why}"), warning
    assert warning.endswith(f"; {continuing(previous)}"), warning
    log = (run_dir / "log").read_text()
    assert warning in log and continuing(previous) in log


def every_file(run_dir):
    """Each file of the run folder: its bytes, or where a link points."""
    return {str(p.relative_to(run_dir)): os.readlink(p) if p.is_symlink() else p.read_bytes()
            for p in sorted(run_dir.rglob("*")) if p.is_symlink() or p.is_file()}


def every_epoch_file_truncated(checkpoint):
    for path in checkpoint.glob("epoch_[0-9]*.pth"):
        truncated(path)


def only_the_last_left_carrying_code(checkpoint):
    last = last_file(checkpoint.parent)
    for path in checkpoint.glob("epoch_[0-9]*.pth"):
        if path != last:
            path.unlink()
    carrying_code(last)


@pytest.mark.parametrize("damage, why", [(every_epoch_file_truncated, "truncated"),
                                         (only_the_last_left_carrying_code, "carries code: posix.system")])
def test_con_refuses_in_one_line_when_no_checkpoint_loads(cut, damage, why):
    project, _, _ = cut
    id, run_dir = copy_of_stopped(project)
    newest = last_file(run_dir).name  # a step file of the epoch after `stopped`, or epoch_<stopped>.pth
    damage(run_dir / "checkpoint")
    (run_dir / "checkpoint/.epoch_9.pth.x7k2q9lp.tmp").write_bytes(b"PK")  # a refused con removes nothing either
    before = every_file(run_dir)
    out = project.cli("con", f"cut/{id}")
    assert_one_line_mistake(out, f"no checkpoint of cut/{id} loads: checkpoint/{newest} ({why}", f"`rerun cut/{id}`")
    assert "weights_only" not in out.stderr
    assert every_file(run_dir) == before, "nothing written: the status stays `interrupted`, the log as it was"


def test_leftovers_of_killed_writes_are_removed(cut):
    project, stopped, twin = cut
    id, run_dir = copy_of_stopped(project)
    checkpoint = run_dir / "checkpoint"
    whole = last_file(run_dir).read_bytes()
    (checkpoint / f".epoch_{stopped + 1}.pth.x7k2q9lp.tmp").write_bytes(whole)  # killed before its rename
    (checkpoint / f".epoch_{stopped + 2}.pth.3mzp1c0a.tmp").write_bytes(whole[:4096])  # killed mid-write
    (checkpoint / ".epoch_last.pth.tmp").symlink_to(f"epoch_{stopped + 1}.pth")  # point() killed
    out = project.cli("con", f"cut/{id}")
    assert learned(finished(project, id, out)) == twin
    assert warnings(out) == []
    assert [p.name for p in checkpoint.iterdir() if p.name.startswith(".")] == []


def evaluated(project, id, checkpoint):
    """(loss, acc) of a checkpoint's weights on the run's test split, computed here."""
    script = f"""
import json, sys
sys.path.insert(0, "code")
import dataloader, epoch, model
from utils.checkpoints import load as load_checkpoint
rec = json.load(open({str(project.run_dir('cut', id) / 'statistic.json')!r}))
from utils import overrides, settings
args = settings.process(overrides.apply(overrides.load_config(), rec["overrides"]))
net = model.build(args)
net.load_state_dict(load_checkpoint({str(checkpoint)!r})["model"])
print(json.dumps(epoch.evaluate(net, dataloader.build(args, rec["seed"])[2], args)))
"""
    out = subprocess.run([PYTHON, "-c", script], cwd=project.root, capture_output=True, text=True,
                         env=project.env(), check=True)
    return json.loads(out.stdout.splitlines()[-1]).values()  # loss, acc


def test_a_truncated_best_checkpoint_tests_the_last_weights(cut):
    project, _, twin = cut
    id, run_dir = copy_of_stopped(project)
    truncated(run_dir / "checkpoint/epoch_1.pth")  # what epoch_best names; epoch 1 stays best
    out = project.cli("con", f"cut/{id}")
    record = finished(project, id, out)
    [warning] = warnings(out)
    assert warning == ("runtag: warning: skipped checkpoint/epoch_best.pth (truncated); "
                       "testing the last weights (epoch 8), not the best (epoch 1)")
    assert warning in (run_dir / "log").read_text()
    assert {k: v for k, v in learned(record).items() if not k.startswith("test/")} == \
           {k: v for k, v in twin.items() if not k.startswith("test/")}
    loss, acc = evaluated(project, id, run_dir / "checkpoint/epoch_8.pth")
    assert record["metrics"]["test/acc"] == acc
    assert record["metrics"]["test/loss"] == pytest.approx(loss, rel=1e-6) != twin["test/loss"]


def test_a_damaged_best_link_tests_the_best_epoch_from_its_own_file(cut):
    project, _, twin = cut
    id, run_dir = copy_of_stopped(project)
    best = run_dir / "checkpoint/epoch_best.pth"
    best.unlink()
    best.write_bytes(b"")  # a copy that failed: no link any more, and nothing in it
    out = project.cli("con", f"cut/{id}")
    assert learned(finished(project, id, out)) == twin
    [warning] = warnings(out)
    assert warning == ("runtag: warning: skipped checkpoint/epoch_best.pth (empty); "
                       "testing the best epoch 1 from checkpoint/epoch_1.pth")
    assert warning in (run_dir / "log").read_text()
