"""The language-model example: data=stdlib (code/text.py, characters of Python's own library
source) and model=gpt (model.py), trained by the template's own main.py. Its corpus is the same
on every run and split by position; a short run beats a character-unigram model by far; a run
killed inside an epoch and continued with `con` trains bit-identically to one never stopped.

Runs here use one thread (OMP_NUM_THREADS=1): on a loaded 2-core machine two threads of a small
transformer wait on each other (a step 20x slower), as test_slurm.py and test_ddp.py do too.
"""
import re
import types

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import RandomSampler
from torchdata.stateful_dataloader import StatefulDataLoader

import dataloader
import text
from conftest import assert_one_line_mistake, learned, make_project
from test_steps import BACKWARD, STOP
from utils.positions import place, position

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
# 42,187 windows of 33 characters an epoch: 660 steps of 64; a step checkpoint every 50 of them
TINY = ["data=stdlib", "model=gpt", "width=32", "layers=1", "heads=2", "context=32", "batch_size=64", "lr=3e-3",
        "dropout=0", "epochs=2", "best_metric=val/loss", "best_mode=min", "figure_every=0",
        "checkpoint_steps=50", "checkpoint_interval=0"]


def curves(project, tag):
    """Every train and val scalar in the run's TensorBoard files (a continued run has two)."""
    events = EventAccumulator(str(project.run_dir(tag, 0) / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    keys = [k for k in events.Tags()["scalars"] if k.split("/")[0] in ("train", "val")]
    return {(key, e.step): e.value for key in keys for e in events.Scalars(key)}


def test_the_corpus_is_the_same_each_time_and_split_by_position():
    chars = text.corpus()
    assert len(chars) == text.CHARS and chars.dtype == torch.int64 and torch.equal(chars, text.corpus())
    train, val, test = text.splits()
    assert torch.equal(torch.cat([train, val, test]), chars)  # consecutive pieces: no character twice
    assert (len(train), len(val), len(test)) == (1_350_000, 75_000, 75_000)
    assert len(text.VOCAB) == 97 and int(chars.max()) < 97 and len(torch.unique(chars)) > 90
    assert text.decode(chars[:40].tolist()) in text.decode(chars.tolist())[:40]  # decodes to the source itself
    args = types.SimpleNamespace(context=16, batch_size=8, num_workers=0, pin_memory=False)
    train_loader, val_loader, test_loader, dims = text.build(args, seed=0)
    assert dims == ((16,), 97) and len(train_loader.sampler) == len(train) // 16
    x, y = train_loader.dataset[5]
    assert torch.equal(x, train[5:21]) and torch.equal(y, train[6:22])  # y: each next character
    windows = val_loader.dataset
    assert len(windows) == text.EVAL_WINDOWS and torch.equal(windows.chars, val) and windows.starts[-1] == len(val) - 17
    shards = [text.build(args, 0, rank, 2)[1].dataset.starts for rank in (0, 1)]
    assert sorted(torch.cat(shards).tolist()) == windows.starts.tolist()  # DDP: disjoint shards, the split once
    assert len(text.build(args, 0, 1, 2)[0].sampler) == len(train) // 16 // 2  # an epoch's windows shared out


def draws(sampler_of, stop):
    """Each batch's first window start over two epochs, as main.py reseeds them: straight, and
    stopped after `stop` batches of epoch 1 with its position saved and placed into a new loader
    (what a step checkpoint and `con` do: utils/checkpointing.py position()/place())."""
    args = types.SimpleNamespace(context=32, batch_size=64, num_workers=0, pin_memory=False)

    def loader():
        built = text.build(args, seed=3)[0]
        if sampler_of is None:
            return built
        sampler = sampler_of(built.dataset, built.generator)
        return StatefulDataLoader(built.dataset, batch_size=64, sampler=sampler, generator=built.generator)

    def epoch(data, ep, limit=None):
        dataloader.reseed(data, 3, ep)
        starts = []
        for x, _ in data:
            starts.append(x[:, 0].tolist())
            if len(starts) == limit:
                break
        return starts

    straight = loader()
    stopped = loader()
    first = epoch(stopped, 1, stop)
    resumed = loader()
    place(resumed, position(stopped, mid=True))
    return epoch(straight, 1) + epoch(straight, 2), first + epoch(resumed, 1) + epoch(resumed, 2)


def test_a_continued_epoch_draws_the_windows_it_would_have_drawn():
    """text.py's sampler draws an epoch at once: placed mid-epoch, the rest of the epoch and the
    next are the same windows. torch's RandomSampler(replacement=True) on the loader's own
    generator is the trap it avoids: it draws in chunks of 32 along the epoch, from a generator
    that main.py's reseed() resets at the top of the continued epoch, so none of the rest match."""
    straight, continued_ = draws(None, stop=100)
    assert straight == continued_ and len(straight) == 2 * 660
    plain = lambda data, g: RandomSampler(data, replacement=True, num_samples=len(data.chars) // 32, generator=g)  # noqa: E731
    straight, continued_ = draws(plain, stop=100)
    rest = [a == b for a, b in zip(straight[100:660], continued_[100:660])]
    assert len(continued_) == len(straight) and not any(rest)


@pytest.mark.parametrize("change, what", [
    (["model=gpt"], "invalid config value model='gpt' — use model=gpt with data=stdlib"),
    (["data=stdlib"], "invalid config value data='stdlib' — use data=stdlib with model=gpt"),
    (["data=stdlib", "model=gpt", "width=30", "heads=4"], "invalid config value width=30 — use a multiple of heads=4"),
    (["data=stdlib", "model=gpt", "layers=0"], "invalid config value layers=0 — use a number > 0"),
    (["data=stdlib", "model=gpt", "heads=0"], "invalid config value heads=0 — use a number > 0"),
])
def test_a_language_model_the_run_cannot_have_is_one_line_before_anything_is_written(tmp_path, change, what):
    project = make_project(tmp_path / "project")
    out = project.cli("run", "bad", *change)
    assert_one_line_mistake(out, what)
    assert not (project.root / "__result__").exists() and "bad" not in project.git("tag")


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    """A project whose epoch.py can stop its run at a step (test_steps.py's STOP), and a tiny
    language model's run never stopped."""
    project = make_project(tmp_path_factory.mktemp("lm") / "project")
    epoch_py = project.root / "code/epoch.py"
    source = epoch_py.read_text().replace("import sys\n", "import os\nimport signal\nimport sys\n", 1)
    assert BACKWARD in source
    project.commit("code/epoch.py", source.replace(BACKWARD, STOP, 1), "stop at a step")
    project.cli("run", "-f", "straight", *TINY, env=ONE_THREAD, check=True)
    return project


def test_a_tiny_language_model_beats_the_unigram_model_by_far(lm):
    record = lm.record("straight", 0)
    metrics = record["metrics"]
    assert record["status"] == "finished" and record["epoch"] == 2
    assert {"last/train_loss", "last/train_acc", "best/val_loss", "test/loss", "test/acc"} <= metrics.keys()
    unigram = text.unigram_loss()
    assert 3.0 < unigram < 3.3  # nats per character: about 4.5 bits
    assert metrics["best/val_loss"] < unigram - 0.5, (metrics, unigram)
    assert metrics["test/loss"] < unigram - 0.5


@pytest.mark.parametrize("where", ["2:130", "1:420"])
def test_a_language_model_killed_inside_an_epoch_continues_bit_identical(lm, where):
    """Killed with SIGKILL at step 130 of epoch 2 (or 420 of epoch 1), `con` goes on from the
    step checkpoint before it (step 100, 400): every learned metric and curve is the straight run's."""
    tag = "kill" + where.replace(":", "_")
    out = lm.cli("run", "-f", tag, *TINY, env={**ONE_THREAD, "STOP_AT": f"{where}:kill"})
    assert out.returncode != 0 and lm.record(tag, 0)["status"] != "finished", out.stdout[-2000:]
    lm.cli("con", tag, env=ONE_THREAD, check=True)
    record = lm.record(tag, 0)
    log = (lm.run_dir(tag, 0) / "log").read_text()
    after, at = re.findall(r"continuing after epoch (\d+)(?:, at step (\d+))?", log)[-1]
    assert record["status"] == "finished"
    epoch, step = map(int, where.split(":"))
    assert (int(after), int(at or 0)) == (epoch - 1, step // 50 * 50)  # from inside the epoch
    assert learned(record) == learned(lm.record("straight", 0))  # JSON floats: equal is bit-identical
    assert curves(lm, tag) == curves(lm, "straight")
