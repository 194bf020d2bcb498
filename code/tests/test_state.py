"""State and its checkpoints on disk, and the atomic writes under statistic.json: in-process, real files."""
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/: the template's modules

from state import Policy, State, seed_everything  # noqa: E402
from utils import atomic  # noqa: E402
from utils.checkpoints import load as load_checkpoint  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")  # torchdata 0.11 on torch 2.13


def tiny_state(directory, seed=0, **policy):
    """A small model's state that checkpoints into `directory`: every epoch unless told otherwise."""
    seed_everything(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    return State(net, opt, sched, policy=Policy(Path(directory), **policy))


def step(state):
    """One optimiser step on random data, so every epoch's weights and Adam moments differ."""
    x = torch.randn(8, 4)
    loss = state.model(x).pow(2).mean()
    state.optimizer.zero_grad()
    loss.backward()
    state.optimizer.step()
    state.scheduler.step()


def end_epoch(state, epoch, value):
    """What main.py does when an epoch ends: its metric decides the best, and a checkpoint when due."""
    state.epoch = epoch
    best = state.update_best(value)
    state.epoch_done(best)
    return best


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
    state = tiny_state(ckpt, keep=2)
    metric = [0.5, 0.7, 0.6, 0.65, 0.4, 0.69]  # best at epoch 2, never beaten afterwards
    for epoch, value in enumerate(metric, 1):
        step(state)
        end_epoch(state, epoch, value)
        assert target(ckpt / "epoch_last.pth") == f"epoch_{epoch}.pth"
        assert target(ckpt / "epoch_best.pth") == f"epoch_{min(epoch, 2)}.pth"
        assert (ckpt / "epoch_best.pth").resolve().exists()
    # keep=2: two epoch files besides those last (6) and best (2) point at; 1 and 3 are gone
    assert epoch_files(ckpt) == [2, 4, 5, 6]
    assert load_checkpoint(ckpt / "epoch_best.pth")["epoch"] == 2
    assert load_checkpoint(ckpt / "epoch_last.pth")["best_epoch"] == 2
    assert not [p.name for p in ckpt.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_keep_zero_keeps_every_epoch(tmp_path):
    state = tiny_state(tmp_path, keep=0)
    for epoch in range(1, 5):
        end_epoch(state, epoch, float(epoch))
    assert epoch_files(tmp_path) == [1, 2, 3, 4]
    assert target(tmp_path / "epoch_best.pth") == target(tmp_path / "epoch_last.pth") == "epoch_4.pth"


def test_moved_run_folder_keeps_working_links(tmp_path):
    state = tiny_state(tmp_path / "a" / "checkpoint")
    end_epoch(state, 1, 0.5)
    (tmp_path / "a").rename(tmp_path / "b")  # relative links survive a moved or copied run folder
    assert load_checkpoint(tmp_path / "b" / "checkpoint" / "epoch_last.pth")["epoch"] == 1


def test_load_restores_weights_optimizer_scheduler_and_rng(tmp_path):
    state = tiny_state(tmp_path, seed=3)
    for epoch in (1, 2, 3):
        step(state)
        end_epoch(state, epoch, -epoch)  # best stays at epoch 1; stale counts up
    # what training would do next, from this exact state
    expected_draw = torch.rand(5)
    step(state)
    expected_weights = {k: v.clone() for k, v in state.model.state_dict().items()}

    restored = tiny_state(tmp_path, seed=99)  # other weights, other RNG
    restored.load(tmp_path / "epoch_last.pth")  # load_checkpoint: weights_only=True
    assert (restored.epoch, restored.best, restored.best_epoch, restored.stale) == (3, -1, 1, 2)
    assert restored.scheduler.get_last_lr() == [1e-2 * 0.5]
    assert torch.equal(torch.rand(5), expected_draw), "the torch RNG was not restored"
    step(restored)
    for key, value in restored.model.state_dict().items():
        assert torch.equal(value, expected_weights[key]), key


def test_checkpoint_is_plain_data(tmp_path):
    """A checkpoint loads with weights_only=True: tensors and plain types, no pickled code."""
    state = tiny_state(tmp_path)
    end_epoch(state, 1, 0.5)
    ckpt = torch.load(tmp_path / "epoch_1.pth", weights_only=True)
    assert set(ckpt) == {"model", "optimizer", "scheduler", "scaler", "epoch", "step", "best", "best_epoch", "stale",
                         "rng"}


def test_background_save_writes_in_order(tmp_path):
    with ThreadPoolExecutor(1) as writer:
        state = tiny_state(tmp_path, keep=1, writer=writer)
        for epoch in range(1, 6):
            step(state)
            end_epoch(state, epoch, 1.0 if epoch == 1 else 0.0)
            assert state.writing is not None, "a small state is written in the background"
        state.writing.result()
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
    """Between writes (checkpoint_interval) a new best epoch is only kept in memory; the write that
    comes puts both the best epoch and the newest on disk, and nothing in between."""
    state = tiny_state(tmp_path / "checkpoint", interval=3600)
    tmp_path = tmp_path / "checkpoint"
    for epoch, value in ((1, 0.9), (2, 0.5), (3, 0.7)):
        step(state)
        end_epoch(state, epoch, value)
    assert not tmp_path.exists(), "written before it was due"
    assert state.held_best["epoch"] == 1  # the best epoch's copy, the only one held
    expected = {k: v.clone() for k, v in state.model.state_dict().items()}
    state.finish()  # training ended after epoch 3: it is written from the training state
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth", "epoch_3.pth", "epoch_best.pth",
                                                          "epoch_last.pth"]
    assert os.readlink(tmp_path / "epoch_best.pth") == "epoch_1.pth"
    assert os.readlink(tmp_path / "epoch_last.pth") == "epoch_3.pth"
    last = load_checkpoint(tmp_path / "epoch_last.pth")
    assert all(torch.equal(last["model"][k], expected[k]) for k in expected)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    state.finish()  # nothing new held: nothing written
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_a_large_state_is_never_copied_and_its_best_epoch_is_written_at_once(tmp_path):
    """Above checkpoint_copy_mb nothing is held in memory: a new best goes to disk when it
    happens, from the training state itself (no background copy), and the rest when due."""
    with ThreadPoolExecutor(1) as writer:
        state = tiny_state(tmp_path, interval=3600, copy_mb=0, writer=writer)
        step(state)
        end_epoch(state, 1, 0.9)  # a new best: written now, though no write is due
        assert state.writing is None and state.held_best is None
        assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth", "epoch_best.pth", "epoch_last.pth"]
        step(state)
        end_epoch(state, 2, 0.5)  # not better, not due: on disk nowhere yet, and held nowhere
        assert not (tmp_path / "epoch_2.pth").exists() and state.held_best is None
        expected = {k: v.clone() for k, v in state.model.state_dict().items()}
        state.finish()
    assert target(tmp_path / "epoch_last.pth") == "epoch_2.pth"
    assert target(tmp_path / "epoch_best.pth") == "epoch_1.pth"
    last = load_checkpoint(tmp_path / "epoch_last.pth")
    assert all(torch.equal(last["model"][k], expected[k]) for k in expected)


def loader(epoch):
    """A shuffling, resumable loader of 40 samples in 10 batches, its order fixed by the epoch."""
    from torch.utils.data import TensorDataset
    from torchdata.stateful_dataloader import StatefulDataLoader
    data = TensorDataset(torch.arange(160, dtype=torch.float32).reshape(40, 4) / 160)
    return StatefulDataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(epoch))


def train_epoch(state, epoch):
    """epoch.train's shape: steps that draw from the global RNG, sums, step_done after each."""
    state.start_epoch(data := loader(epoch))
    sums = state.epoch_sums(torch.zeros(1, dtype=torch.float64))
    for (x,) in data:
        loss = state.model(x + 0.01 * torch.randn_like(x)).pow(2).mean()
        state.optimizer.zero_grad()
        loss.backward()
        state.optimizer.step()
        sums += loss.detach()
        state.step_done()
    return sums.item()


def test_step_checkpoints_are_pruned_around_last_and_best(tmp_path):
    state = tiny_state(tmp_path, steps=3, keep=1)
    train_epoch(state, 1)
    end_epoch(state, 1, 0.9)  # the best
    state.start_epoch(data := loader(2))
    state.epoch_sums(torch.zeros(1))
    for n, _ in enumerate(data, 1):
        step(state)
        state.step_done()
        if n == 6:
            assert target(tmp_path / "epoch_last.pth") == "epoch_2_step_6.pth"
            assert target(tmp_path / "epoch_best.pth") == "epoch_1.pth"
    end_epoch(state, 2, 0.1)
    # step 9 of 10 is the last step file; the epoch's end writes no step file at its last step
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch_1.pth", "epoch_2.pth", "epoch_2_step_9.pth", "epoch_best.pth", "epoch_last.pth"]
    assert load_checkpoint(tmp_path / "epoch_2_step_9.pth")["step"] == 9


def test_a_step_checkpoint_continues_the_epoch_exactly(tmp_path):
    """From epoch_2_step_6.pth: the rest of epoch 2's batches in the same order, the same noise,
    the same sums, the same weights as the state that never stopped."""
    straight = tiny_state(tmp_path / "a", steps=6)
    train_epoch(straight, 1)
    end_epoch(straight, 1, 0.5)
    sums = train_epoch(straight, 2)
    ckpt = load_checkpoint(tmp_path / "a" / "epoch_2_step_6.pth")
    assert (ckpt["epoch"], ckpt["step"], len(ckpt["loader"]), len(ckpt["sums"])) == (1, 6, 1, 1)

    resumed = tiny_state(tmp_path / "b", seed=7)
    resumed.load(tmp_path / "a" / "epoch_2_step_6.pth")
    assert (resumed.epoch, resumed.step) == (1, 6)
    assert train_epoch(resumed, 2) == sums
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, straight.model.state_dict()[key]), key
