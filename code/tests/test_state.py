"""State and its checkpoints on disk, and the atomic writes under statistic.json: in-process, real files."""
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/: the template's modules

from state import State, load_checkpoint, seed_everything  # noqa: E402
from utils import atomic  # noqa: E402


def tiny_state(seed=0):
    seed_everything(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    return State(net, opt, sched)


def step(state):
    """One optimiser step on random data, so every epoch's weights and Adam moments differ."""
    x = torch.randn(8, 4)
    loss = state.model(x).pow(2).mean()
    state.optimizer.zero_grad()
    loss.backward()
    state.optimizer.step()
    state.scheduler.step()


def epoch_files(directory):
    return sorted(int(p.stem.split("_")[1]) for p in directory.glob("epoch_[0-9]*.pth"))


def target(link):
    """What a symlink says (must be a bare file name: relative, so the run folder can move)."""
    assert link.is_symlink(), f"{link.name} is not a symlink"
    text = os.readlink(link)
    assert not os.path.isabs(text) and "/" not in text, f"{link.name} -> {text} is not relative to its folder"
    return text


def test_pruning_keeps_best_and_symlinks_point_right(tmp_path):
    ckpt = tmp_path / "checkpoint"
    state = tiny_state()
    metric = [0.5, 0.7, 0.6, 0.65, 0.4, 0.69]  # best at epoch 2, never beaten afterwards
    for epoch, value in enumerate(metric, 1):
        step(state)
        state.epoch = epoch
        best = state.update_best(value)
        state.save(ckpt, best, keep=2)
        assert target(ckpt / "epoch_last.pth") == f"epoch_{epoch}.pth"
        assert target(ckpt / "epoch_best.pth") == f"epoch_{min(epoch, 2)}.pth"
        assert (ckpt / "epoch_best.pth").resolve().exists()
    # keep=2: two epoch files besides those last (6) and best (2) point at; 1 and 3 are gone
    assert epoch_files(ckpt) == [2, 4, 5, 6]
    assert load_checkpoint(ckpt / "epoch_best.pth")["epoch"] == 2
    assert load_checkpoint(ckpt / "epoch_last.pth")["best_epoch"] == 2
    assert not [p.name for p in ckpt.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_keep_zero_keeps_every_epoch(tmp_path):
    state = tiny_state()
    for epoch in range(1, 5):
        state.epoch = epoch
        state.save(tmp_path, state.update_best(float(epoch)), keep=0)
    assert epoch_files(tmp_path) == [1, 2, 3, 4]
    assert target(tmp_path / "epoch_best.pth") == target(tmp_path / "epoch_last.pth") == "epoch_4.pth"


def test_moved_run_folder_keeps_working_links(tmp_path):
    state = tiny_state()
    state.epoch = 1
    state.save(tmp_path / "a" / "checkpoint", True)
    (tmp_path / "a").rename(tmp_path / "b")  # relative links survive a moved or copied run folder
    assert load_checkpoint(tmp_path / "b" / "checkpoint" / "epoch_last.pth")["epoch"] == 1


def test_load_restores_weights_optimizer_scheduler_and_rng(tmp_path):
    state = tiny_state(seed=3)
    for epoch in (1, 2, 3):
        step(state)
        state.epoch = epoch
        state.update_best(-epoch)  # best stays at epoch 1; stale counts up
        state.save(tmp_path, epoch == 1)
    # what training would do next, from this exact state
    expected_draw = torch.rand(5)
    step(state)
    expected_weights = {k: v.clone() for k, v in state.model.state_dict().items()}

    restored = tiny_state(seed=99)  # other weights, other RNG
    restored.load(tmp_path / "epoch_last.pth")  # load_checkpoint: weights_only=True
    assert (restored.epoch, restored.best, restored.best_epoch, restored.stale) == (3, -1, 1, 2)
    assert restored.scheduler.get_last_lr() == [1e-2 * 0.5]
    assert torch.equal(torch.rand(5), expected_draw), "the torch RNG was not restored"
    step(restored)
    for key, value in restored.model.state_dict().items():
        assert torch.equal(value, expected_weights[key]), key


def test_checkpoint_is_plain_data(tmp_path):
    """A checkpoint loads with weights_only=True: tensors and plain types, no pickled code."""
    state = tiny_state()
    state.epoch = 1
    state.save(tmp_path, True)
    ckpt = torch.load(tmp_path / "epoch_1.pth", weights_only=True)
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "epoch", "best", "best_epoch", "stale", "rng"}


def test_background_save_writes_in_order(tmp_path):
    state = tiny_state()
    with ThreadPoolExecutor(1) as writer:
        futures = []
        for epoch in range(1, 6):
            step(state)
            state.epoch = epoch
            futures.append(state.save(tmp_path, epoch == 1, keep=1, background=writer))
        for f in futures:
            f.result()
    assert epoch_files(tmp_path) == [1, 4, 5]
    # the snapshot was taken at save time, not when the writer got to it
    assert torch.equal(load_checkpoint(tmp_path / "epoch_last.pth")["model"]["0.weight"],
                       state.model.state_dict()["0.weight"])
    assert not torch.equal(load_checkpoint(tmp_path / "epoch_4.pth")["model"]["0.weight"],
                           state.model.state_dict()["0.weight"])


# atomic writes: statistic.json is rewritten every epoch and read by other processes at any time

def test_write_json_unserialisable_leaves_old_file(tmp_path):
    path = tmp_path / "statistic.json"
    atomic.write_json(path, {"epoch": 1})
    with pytest.raises(TypeError):
        atomic.write_json(path, {"epoch": 2, "bad": object()})
    assert json.loads(path.read_text()) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["statistic.json"]


def test_write_failing_midway_removes_temp_file(tmp_path):
    path = tmp_path / "statistic.json"
    atomic.write_json(path, {"epoch": 1})
    with pytest.raises(TypeError):
        atomic.write_bytes(path, "not bytes")  # fails inside the write, after the temp file exists
    assert json.loads(path.read_text()) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["statistic.json"]


def test_write_failing_at_rename_removes_temp_file(tmp_path):
    path = tmp_path / "taken"
    path.mkdir()  # the rename onto a directory fails after the data is written and synced
    with pytest.raises(OSError):
        atomic.write_json(path, {"epoch": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_append_lines_adds_only_new_lines(tmp_path):
    path = tmp_path / "exper-list" / "finished.txt"
    assert atomic.append_lines(path, ["a/0", "b/0"]) == ["a/0", "b/0"]
    assert atomic.append_lines(path, ["b/0", "c/1", "c/1"]) == ["c/1"]
    assert path.read_text() == "a/0\nb/0\nc/1\n"


def test_held_back_writes_keep_the_best_and_the_last(tmp_path):
    """Between writes (checkpoint_interval) epochs are only kept in memory; the write that comes
    puts both the best epoch and the newest on disk, and nothing in between."""
    state = tiny_state()
    for epoch, value in ((1, 0.9), (2, 0.5), (3, 0.7)):
        step(state)
        state.epoch = epoch
        state.keep(state.update_best(value))
    expected = {k: v.clone() for k, v in state.model.state_dict().items()}
    state.write(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth", "epoch_3.pth", "epoch_best.pth",
                                                          "epoch_last.pth"]
    assert os.readlink(tmp_path / "epoch_best.pth") == "epoch_1.pth"
    assert os.readlink(tmp_path / "epoch_last.pth") == "epoch_3.pth"
    last = load_checkpoint(tmp_path / "epoch_last.pth")
    assert all(torch.equal(last["model"][k], expected[k]) for k in expected)
    assert state.write(tmp_path) is None  # nothing new kept: nothing written
