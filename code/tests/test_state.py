"""The run's state and its checkpoints on disk (utils/session.py, utils/checkpointing.py), driven
the way a training loop drives them, and the atomic writes under statistic.json: in-process, real files."""
import json
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/: the template's modules

from conftest import wait_for  # noqa: E402
from utils import atomic, cadence, signals  # noqa: E402
from utils.checkpoints import resume_point  # noqa: E402
from utils.checkpoints import load as load_checkpoint  # noqa: E402
from utils.session import Session  # noqa: E402
from utils.snapshot import seed_everything  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")  # torchdata 0.11 on torch 2.13


@pytest.fixture(autouse=True)
def clean_signals():
    """run.track() holds signals back; no test leaves that (or a noted signal) to the next."""
    yield
    signals.deferring = False
    signals.received.clear()


class Recorder:
    """The run's Recorder as far as a Session uses it: the checkpoint folder, and a writer that runs
    writes on its own thread (`threaded`) or at once."""

    def __init__(self, checkpoints, threaded=False):
        self.checkpoints = Path(checkpoints)
        self.pool = ThreadPoolExecutor(1) if threaded else None
        self.pending, self.metrics, self.warnings = [], {}, []

    active = True

    def evaluation(self, at, metrics, *rest, **kw):
        self.metrics[at["epoch"]] = metrics

    def log_step(self, *args):
        pass

    def submit(self, fn, *args):
        if self.pool:
            future = self.pool.submit(fn, *args)
        else:
            future = Future()
            future.set_result(fn(*args))
        self.pending.append(future)
        return future

    def drain(self):
        for future in self.pending:
            future.result()
        self.pending = []

    def warn(self, text):
        self.warnings.append(text)

    def close(self):
        if self.pool:
            self.pool.shutdown(wait=True)


def settings(**changes):
    """config.py's values that a Session reads: a checkpoint every evaluation unless told otherwise."""
    values = dict(epochs=6, best_metric="val/acc", best_mode="max", patience=0, batch_size=4, grad_accum=1,
                  device="cpu", keep_checkpoints=2, checkpoint_every=1, checkpoint_interval=0.0,
                  checkpoint_steps=0, checkpoint_copy_mb=256.0)
    return SimpleNamespace(**{**values, **changes})


def tiny_run(directory, seed=0, threaded=False, resume=None, data=None, **changes):
    """A small model's Session that checkpoints into `directory`, its objects tracked as a loop does."""
    seed_everything(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    run = Session(settings(**changes), {"seed": seed}, Recorder(directory, threaded), resume)
    run.net, run.opt, run.sched = net, opt, sched  # the loop's own names, for the tests to reach
    run.track(model=net, optimizer=opt, scheduler=sched, **({"data": data} if data is not None else {}))
    return run


def step(run):
    """One optimiser step on random data (every epoch's weights and Adam moments differ), and run.step()."""
    x = torch.randn(8, 4)
    loss = run.net(x).pow(2).mean()
    run.opt.zero_grad()
    loss.backward()
    run.opt.step()
    run.sched.step()
    run.step(loss=loss.detach())


def epoch_files(directory):
    return sorted(int(p.stem.split("_")[1]) for p in directory.glob("epoch_[0-9]*.pth"))


def target(link):
    """What a symlink says (must be a bare file name: relative, so the run folder can move)."""
    assert link.is_symlink(), f"{link.name} is not a symlink"
    text = os.readlink(link)
    assert not os.path.isabs(text) and "/" not in text, f"{link.name} -> {text} is not relative to its folder"
    return text


def weights(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pruning_keeps_best_and_symlinks_point_right(tmp_path):
    ckpt = tmp_path / "checkpoint"
    run = tiny_run(ckpt, keep_checkpoints=2)
    metric = [0.5, 0.7, 0.6, 0.65, 0.4, 0.69]  # best at epoch 2, never beaten afterwards
    for epoch in run.epochs():
        step(run)
        run.evaluated(val={"acc": metric[epoch - 1]})
        assert target(ckpt / "epoch_last.pth") == f"epoch_{epoch}.pth"
        assert target(ckpt / "epoch_best.pth") == f"epoch_{min(epoch, 2)}.pth"
        assert (ckpt / "epoch_best.pth").resolve().exists()
    run.end()
    # keep=2: two epoch files besides those last (6) and best (2) point at; 1 and 3 are gone
    assert epoch_files(ckpt) == [2, 4, 5, 6]
    assert load_checkpoint(ckpt / "epoch_best.pth")["epoch"] == 2
    assert load_checkpoint(ckpt / "epoch_last.pth")["best_epoch"] == 2
    assert not [p.name for p in ckpt.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_keep_zero_keeps_every_epoch(tmp_path):
    run = tiny_run(tmp_path, keep_checkpoints=0, epochs=4)
    for epoch in run.epochs():
        run.evaluated(val={"acc": float(epoch)})
    run.end()
    assert epoch_files(tmp_path) == [1, 2, 3, 4]
    assert target(tmp_path / "epoch_best.pth") == target(tmp_path / "epoch_last.pth") == "epoch_4.pth"


def test_moved_run_folder_keeps_working_links(tmp_path):
    run = tiny_run(tmp_path / "a" / "checkpoint")
    run.evaluated(val={"acc": 0.5})
    run.end()
    (tmp_path / "a").rename(tmp_path / "b")  # relative links survive a moved or copied run folder
    assert load_checkpoint(tmp_path / "b" / "checkpoint" / "epoch_last.pth")["epoch"] == 1


def test_load_restores_weights_optimizer_scheduler_and_rng(tmp_path):
    run = tiny_run(tmp_path, seed=3, epochs=3)
    for epoch in run.epochs():
        step(run)
        run.evaluated(val={"acc": -epoch})  # best stays at epoch 1; stale counts up
    run.end()
    # what training would do next, from this exact state
    expected_draw = torch.rand(5)
    step(run)
    expected = weights(run.net)

    # other weights, other RNG; resume_point() loads with weights_only=True
    restored = tiny_run(tmp_path, seed=99, epochs=4, resume=resume_point(tmp_path))
    assert (restored.epoch, restored.best, restored.best_epoch, restored.stale, restored.steps) == (3, -1, 1, 2, 3)
    assert restored.sched.get_last_lr() == [1e-2 * 0.5]
    assert torch.equal(torch.rand(5), expected_draw), "the torch RNG was not restored"
    step(restored)
    assert same_weights(weights(restored.net), expected)
    restored.end()


def test_a_continued_run_trains_only_the_epochs_left(tmp_path):
    run = tiny_run(tmp_path, epochs=2)
    for epoch in run.epochs():
        run.evaluated(val={"acc": epoch})
    run.end()
    continued = tiny_run(tmp_path, epochs=4, resume=resume_point(tmp_path))
    trained = []
    for epoch in continued.epochs():  # the epochs left: from the one after the checkpoint
        trained.append(epoch)
        continued.evaluated(val={"acc": 0.0})
    continued.end()
    assert trained == [3, 4]


def test_checkpoint_is_plain_data(tmp_path):
    """A checkpoint loads with weights_only=True: tensors and plain types, no pickled code. Each
    tracked shared object under its own name, the counters, and one part per process; a loader's
    position inside an epoch, at its end only its shuffling generators."""
    run = tiny_run(tmp_path, data=loader(1))
    run.evaluated(val={"acc": 0.5})
    run.end()
    ckpt = torch.load(tmp_path / "epoch_1.pth", weights_only=True)
    assert set(ckpt) == {"model", "optimizer", "scheduler", "epoch", "step", "steps", "best", "best_epoch",
                         "best_step", "best_steps", "stale", "evaluations", "names", "ranks"}
    assert len(ckpt["ranks"]) == 1 and set(ckpt["ranks"][0]) == {"rng", "sums", "data"}
    assert set(ckpt["ranks"][0]["data"]) == {"generators"}  # an epoch's end: only what it shuffles with
    assert (ckpt["epoch"], ckpt["step"], ckpt["best"]) == (1, 0, 0.5)


def test_background_save_writes_in_order(tmp_path):
    run = tiny_run(tmp_path, threaded=True, keep_checkpoints=1, epochs=5)
    try:
        for epoch in run.epochs():
            step(run)
            run.evaluated(val={"acc": 1.0 if epoch == 1 else 0.0})
            assert run.checkpointer.writing is not None, "a small state is written in the background"
        run.end()
    finally:
        run.recorder.close()
    assert epoch_files(tmp_path) == [1, 4, 5]
    # the snapshot was taken at save time, not when the writer got to it
    assert torch.equal(load_checkpoint(tmp_path / "epoch_last.pth")["model"]["0.weight"],
                       run.net.state_dict()["0.weight"])
    assert not torch.equal(load_checkpoint(tmp_path / "epoch_4.pth")["model"]["0.weight"],
                           run.net.state_dict()["0.weight"])


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
    """Between writes (checkpoint_interval) a new best evaluation is only kept in memory; the write
    that comes puts both the best and the newest on disk, and nothing in between."""
    ckpt = tmp_path / "checkpoint"
    run = tiny_run(ckpt, checkpoint_interval=3600, epochs=3)
    for epoch in run.epochs():
        step(run)
        run.evaluated(val={"acc": (0.9, 0.5, 0.7)[epoch - 1]})
    assert not ckpt.exists(), "written before it was due"
    assert run.checkpointer.held_best["epoch"] == 1  # the best evaluation's copy, the only one held
    expected = weights(run.net)
    run.end()  # training ended after epoch 3: it is written from the training state
    assert sorted(p.name for p in ckpt.iterdir()) == ["epoch_1.pth", "epoch_3.pth", "epoch_best.pth",
                                                      "epoch_last.pth"]
    assert os.readlink(ckpt / "epoch_best.pth") == "epoch_1.pth"
    assert os.readlink(ckpt / "epoch_last.pth") == "epoch_3.pth"
    assert same_weights(load_checkpoint(ckpt / "epoch_last.pth")["model"], expected)
    before = {p.name: p.stat().st_mtime_ns for p in ckpt.iterdir()}
    run.finish()  # nothing new held: nothing written
    run.recorder.drain()
    assert {p.name: p.stat().st_mtime_ns for p in ckpt.iterdir()} == before


def test_by_default_a_write_waits_for_training_worth_a_hundred_times_its_cost(tmp_path):
    """checkpoint_interval=None: the first evaluation is written at once; the next only once the
    training since the last write is 1 / cadence.SHARE times what that write cost (measured), and
    a best in between is held in memory until then."""
    ckpt = tmp_path / "checkpoint"
    run = tiny_run(ckpt, checkpoint_interval=None, epochs=3)
    epochs = run.epochs()
    for acc in (0.5, 0.9):  # one right after the other: far less than 100 writes' time between
        next(epochs)
        step(run)
        run.evaluated(val={"acc": acc})
    run.recorder.drain()
    assert epoch_files(ckpt) == [1] and run.checkpointer.held_best["epoch"] == 2
    assert run.cadence.loop_s > 0 and cadence.SHARE == 0.01
    wait_for(run.cadence.due, what="training worth the last write")
    next(epochs)
    step(run)
    run.evaluated(val={"acc": 0.7})
    run.recorder.drain()
    assert epoch_files(ckpt) == [1, 2, 3] and os.readlink(ckpt / "epoch_best.pth") == "epoch_2.pth"
    run.end()


def test_a_large_state_is_never_copied_and_its_best_is_written_at_once(tmp_path):
    """Above checkpoint_copy_mb nothing is held in memory: a new best goes to disk when it
    happens, from the training state itself (no background copy), and the rest when due."""
    run = tiny_run(tmp_path, threaded=True, checkpoint_interval=3600, checkpoint_copy_mb=0, epochs=2)
    try:
        epochs = run.epochs()
        next(epochs)
        step(run)
        run.evaluated(val={"acc": 0.9})  # a new best: written now, though no write is due
        assert run.checkpointer.held_best is None
        run.checkpointer.writing.result()  # its bytes were written in the loop; fsync, rename, links after
        assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth", "epoch_best.pth", "epoch_last.pth"]
        next(epochs)
        step(run)
        run.evaluated(val={"acc": 0.5})  # not better, not due: on disk nowhere yet, and held nowhere
        assert not (tmp_path / "epoch_2.pth").exists() and run.checkpointer.held_best is None
        expected = weights(run.net)
        run.end()
    finally:
        run.recorder.close()
    assert target(tmp_path / "epoch_last.pth") == "epoch_2.pth"
    assert target(tmp_path / "epoch_best.pth") == "epoch_1.pth"
    assert same_weights(load_checkpoint(tmp_path / "epoch_last.pth")["model"], expected)


def loader(seed):
    """A shuffling, resumable loader of 40 samples in 10 batches, its order fixed by its generator."""
    from torch.utils.data import TensorDataset
    from torchdata.stateful_dataloader import StatefulDataLoader
    data = TensorDataset(torch.arange(160, dtype=torch.float32).reshape(40, 4) / 160)
    return StatefulDataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(seed))


def train(run, data, metric, seen=None, after_step=lambda: None):
    """main.py's loop and epoch.train's shape: the loader reseeded each epoch, steps that draw from
    the global RNG, run.step() after each, run.evaluated() at each epoch's end. `seen`: every
    epoch's batches and, just before its evaluation, run.step()'s sums."""
    seen = {} if seen is None else seen
    for epoch in run.epochs():
        data.generator.manual_seed(epoch)  # dataloader.reseed(): the order a function of the epoch
        batches = seen.setdefault(epoch, {"batches": []})["batches"]
        for (x,) in data:
            batches.append(x.clone())
            loss = run.net(x + 0.01 * torch.randn_like(x)).pow(2).mean()
            run.opt.zero_grad()
            loss.backward()
            run.opt.step()
            run.step(loss=loss.detach())
            after_step()
        seen[epoch]["sums"] = run.sums.clone()
        run.evaluated(val={"acc": metric[epoch - 1]})
    run.end()
    return seen


def test_step_checkpoints_are_pruned_around_last_and_best(tmp_path):
    data = loader(1)
    run = tiny_run(tmp_path, data=data, checkpoint_steps=3, keep_checkpoints=1, epochs=2)
    links = {}  # epoch 2's step: (last, best) right after it

    def look():
        if run.epoch == 1:
            links[run.in_epoch] = (target(tmp_path / "epoch_last.pth"), target(tmp_path / "epoch_best.pth"))

    train(run, data, [0.9, 0.1], after_step=look)  # epoch 1 the best
    assert links[6] == ("epoch_2_step_6.pth", "epoch_1.pth")
    # step 9 of 10 is the last step file; the epoch's end writes no step file at its last step
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch_1.pth", "epoch_2.pth", "epoch_2_step_9.pth", "epoch_best.pth", "epoch_last.pth"]
    assert load_checkpoint(tmp_path / "epoch_2_step_9.pth")["step"] == 9
    assert target(tmp_path / "epoch_best.pth") == "epoch_1.pth"


def test_a_step_checkpoint_continues_the_epoch_exactly(tmp_path):
    """From epoch_2_step_6.pth: the rest of epoch 2's batches in the same order, the same noise,
    the same sums, the same weights as the state that never stopped."""
    data = loader(1)
    straight = tiny_run(tmp_path / "a", data=data, checkpoint_steps=6, epochs=2)
    seen = train(straight, data, [0.5, 0.4])
    ckpt = load_checkpoint(tmp_path / "a" / "epoch_2_step_6.pth")
    assert (ckpt["epoch"], ckpt["step"], len(ckpt["ranks"])) == (1, 6, 1)
    assert set(ckpt["ranks"][0]) == {"rng", "sums", "data"}, "a step checkpoint holds the loader's position"
    assert ckpt["ranks"][0]["sums"][0].tolist()[-1] == 6  # the steps summed so far (row 0: since the evaluation)

    data = loader(5)
    resumed = tiny_run(tmp_path / "b", seed=7, data=data, epochs=2, resume=(ckpt, []))
    assert (resumed.epoch, resumed.in_epoch, resumed.steps) == (1, 6, 16)
    again = train(resumed, data, [0.5, 0.4])
    assert list(again) == [2]
    assert len(again[2]["batches"]) == 4
    assert all(torch.equal(a, b) for a, b in zip(again[2]["batches"], seen[2]["batches"][6:])), "other batches"
    assert torch.equal(again[2]["sums"], seen[2]["sums"]), "other train sums"
    assert resumed.recorder.metrics[2]["train/loss"] == straight.recorder.metrics[2]["train/loss"]
    assert same_weights(weights(resumed.net), weights(straight.net))


def test_tally_on_the_cpu_sums_as_a_float64_tensor_would_and_continues_from_its_state():
    """The CPU's float sums are the tensor's float64 additions, bit for bit, and survive a checkpoint."""
    from utils.tally import LOG, Tally
    gen = torch.Generator().manual_seed(0)
    steps = [{"loss": torch.rand((), generator=gen), "acc": torch.rand((), generator=gen, dtype=torch.float64),
              "n": k} for k in range(7)]
    expected = torch.zeros(3, dtype=torch.float64)
    for s in steps:
        expected += torch.stack([s["loss"].double(), s["acc"], torch.tensor(float(s["n"]), dtype=torch.float64)])
    whole, resumed = Tally(), Tally()
    for s in steps:
        assert whole.add(s)
    for s in steps[:4]:
        resumed.add(s)
    state = resumed.state()
    assert state.shape == (2, 4) and state.dtype == torch.float64
    resumed = Tally()
    resumed.load(("loss", "acc", "n"), state, "cpu")
    for s in steps[4:]:
        resumed.add(s)
    assert torch.equal(whole.sums, resumed.sums) and whole.steps() == 7
    assert whole.means(LOG) == {f"train/{k}": v.item() / 7 for k, v in zip(("loss", "acc", "n"), expected)}
    assert whole.steps(LOG) == 0 and whole.steps() == 7  # a log step's row starts again, the evaluation's not
    assert not whole.add({"loss": 1.0})  # other metrics than the first step's
