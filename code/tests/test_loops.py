"""Loops nobody here wrote, through `run` (utils/session.py): each example of code/examples/ is
copied over a project's code/main.py, trained, killed with SIGKILL inside an epoch and continued
with `con`, to the metrics of a run never interrupted, bit for bit (CPU, fixed seed).

The project's copy gets a few lines before its `run.step(` that kill its own process group at a
chosen step (`STOP_AT=<epoch>:<step>:kill`, tests only), as code/tests/test_steps.py does.
"""
import difflib
import io
import re
import tokenize

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import TEMPLATE, learned, make_project
from utils.checkpoints import load as load_checkpoint

EXAMPLES = TEMPLATE / "code/examples"
STEPS = ["checkpoint_steps=3", "checkpoint_interval=0"]  # a step checkpoint every 3 steps, each written
DONE = {}  # (project, tag): what killed_and_continued() found, for the tests that look again
STOP = """{i}import os, signal  # tests only: code/tests/test_loops.py kills the run here
{i}if os.environ.get("STOP_AT") == f"{{run.epoch + 1}}:{{run.in_epoch + 1}}:kill":
{i}    os.killpg(0, signal.SIGKILL)
"""


def with_stop(text):
    """The script with STOP before its first `run.step(` line, at that line's indentation."""
    lines = text.splitlines(keepends=True)
    at = next(k for k, line in enumerate(lines) if line.lstrip().startswith("run.step("))
    indent = lines[at][:len(lines[at]) - len(lines[at].lstrip())]
    return "".join(lines[:at]) + STOP.format(i=indent) + "".join(lines[at:])


def ported(tmp_path, example, config="", args_process=None):
    """A project whose code/main.py is code/examples/<example> (with STOP), config.py with
    `config` appended, args_process.py replaced when given: each committed."""
    project = make_project(tmp_path / "project")
    project.commit("code/main.py", with_stop((EXAMPLES / example).read_text()), f"main.py: {example}")
    if config:
        project.commit("code/config.py", (project.root / "code/config.py").read_text() + config, "its keys")
    if args_process:
        project.commit("code/args_process.py", args_process, "its checks")
    return project


def curves(project, tag, kinds=("train", "val", "test", "best")):
    """The metrics of every epoch in the run's TensorBoard files (a continued run has two)."""
    events = EventAccumulator(str(project.run_dir(tag, 0) / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    keys = [k for k in events.Tags()["scalars"] if k.split("/")[0] in kinds]
    return {(key, e.step): e.value for key in keys for e in events.Scalars(key)}


def killed_and_continued(project, tag, where, *run):
    """`run -f tag` SIGKILLed at STOP_AT=where, then `con tag` to its end: the record, and where
    the log says it continued from: (epochs done, step in the next one or ''). Once a project."""
    if (project.root, tag) in DONE:
        return DONE[project.root, tag]
    out = project.cli("run", "-f", tag, *run, env={"STOP_AT": where})
    assert out.returncode != 0 and project.record(tag, 0)["status"] != "finished", out.stdout[-2000:]
    project.cli("con", tag, check=True)
    log = (project.run_dir(tag, 0) / "log").read_text()
    where = re.findall(r"continuing after epoch (\d+)(?:, at step (\d+))?", log)[-1]
    DONE[project.root, tag] = project.record(tag, 0), where
    return DONE[project.root, tag]


def continued_like_straight(project, where, *run):
    """`run -f` killed at `where`, then `con`: finished, learned metrics and curves equal to the
    straight run's, continued from a checkpoint before the kill. The tag it used."""
    tag = "kill" + where.replace(":", "_")
    record, (after, at) = killed_and_continued(project, tag, f"{where}:kill", *run)
    assert record["status"] == "finished"
    assert learned(record) == learned(project.record("straight", 0))
    assert curves(project, tag) == curves(project, "straight")
    epoch, step = map(int, where.split(":"))
    assert (int(after), int(at or 0)) <= (epoch - 1, step - 1)
    return tag


def code_lines(text):
    """The script's code lines: no docstrings, comments or blank lines."""
    dropped, prev = set(), tokenize.INDENT
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.STRING and prev in (tokenize.INDENT, tokenize.NEWLINE, tokenize.DEDENT):
            dropped.update(range(tok.start[0], tok.end[0] + 1))  # a docstring: a statement of its own
        if tok.type not in (tokenize.COMMENT, tokenize.NL):
            prev = tok.type
    lines = text.splitlines()
    return [re.sub(r"\s+#.*$", "", line).rstrip() for k, line in enumerate(lines, 1)
            if k not in dropped and line.strip() and not line.strip().startswith("#")]


# --- 1. an MNIST-style script in the style of pytorch/examples, ported

DIGITS = ["epochs=3", "lr=1.0", *STEPS]  # 23 steps an epoch


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    project = ported(tmp_path_factory.mktemp("digits"), "digits_runtag.py",
                     "log_interval = 10         # batches between train() lines (digits_runtag.py)\n")
    project.cli("run", "-f", "straight", *DIGITS, check=True)
    return project


def test_the_ported_digits_script_finishes_as_any_run(digits):
    record = digits.record("straight", 0)
    assert record["status"] == "finished" and record["epoch"] == 3
    metrics = record["metrics"]
    for key in ("test/acc", "test/loss", "last/val_acc", "last/train_loss", "best/val_acc", "best/epoch"):
        assert key in metrics, key
    assert metrics["test/acc"] > 0.8, metrics  # it learned the digits
    assert record["hparams"]["log_interval"] == 10 and record["hparams"]["lr"] == 1.0
    curve = curves(digits, "straight", ["train", "val", "lr"])
    per_epoch = record["step"] // 3
    assert [s for (k, s) in curve if k == "val/acc"] == [per_epoch, 2 * per_epoch, 3 * per_epoch]  # optimizer steps
    assert ("train/loss", 3 * per_epoch) in curve and curve["lr", per_epoch] == 1.0  # the lr epoch 1 trained with
    assert curve["lr", 2 * per_epoch] == pytest.approx(1.0 * 0.1)  # config.py's lr_gamma, after epoch 1
    assert "epoch 3/3" in (digits.run_dir("straight", 0) / "log").read_text()


@pytest.mark.parametrize("where", ["2:8", "3:2"])
def test_the_ported_digits_script_continues_bit_identical_after_kill_9(digits, where):
    """2:8: from the step checkpoint at step 6 (or 3); 3:2: before epoch 3's first step
    checkpoint, from epoch 2's end, where the loader's position is not kept."""
    tag = "kill" + where.replace(":", "_")
    record, (after, at) = killed_and_continued(digits, tag, f"{where}:kill", *DIGITS)
    assert record["status"] == "finished"
    assert learned(record) == learned(digits.record("straight", 0))  # JSON floats: equal is bit-identical
    assert curves(digits, tag) == curves(digits, "straight")
    epoch, step = map(int, where.split(":"))
    assert (int(after), int(at or 0)) <= (epoch - 1, step - 1)


def test_a_continued_run_records_the_lr_it_trains_with(digits):
    killed_and_continued(digits, "kill2_8", "2:8:kill", *DIGITS)
    assert curves(digits, "kill2_8", ["lr"]) == curves(digits, "straight", ["lr"])


def test_the_port_adds_only_the_documented_calls():
    """Every code line digits_runtag.py adds to digits_plain.py or changes in it is a call to `run`,
    runner's start or the StatefulDataLoader import (or the `break` of `if run.evaluated(...)`):
    13 lines. What it drops is the plain script's own machinery (argparse, seed, device)."""
    plain = code_lines((EXAMPLES / "digits_plain.py").read_text())
    port = code_lines((EXAMPLES / "digits_runtag.py").read_text())
    added = [line[2:] for line in difflib.ndiff(plain, port) if line.startswith("+ ")]
    print("\n".join(added))
    for before, line in zip([""] + added, added):
        assert re.search(r"\brun\b|runner|StatefulDataLoader|\bsys\b", line) or (
            line.strip() == "break" and "run.evaluated(" in before), line
    assert len(added) == 13, added


# --- 2. two models, two optimizers and an EMA of the generator (code/examples/gan_ema.py)

GAN = ["epochs=3", "batch_size=128", "lr=2e-3", "best_metric=val/ema_mmd", "best_mode=min", *STEPS]  # 16 steps an epoch
GAN_CHECKS = '''"""Checks of the GAN's keys (code/examples/gan_ema.py): best_metric names one of its metrics."""
from utils.settings import number, one_of

METRICS = {"train": ("d_loss", "g_loss"), "val": ("mmd", "ema_mmd")}  # what gan_ema.py reports


def check(cfg):
    number(cfg, "lr", above=0)
    one_of(cfg, "best_metric", [f"{split}/{name}" for split, names in METRICS.items() for name in names])
'''


@pytest.fixture(scope="module")
def gan(tmp_path_factory):
    project = ported(tmp_path_factory.mktemp("gan"), "gan_ema.py", args_process=GAN_CHECKS)
    project.cli("run", "-f", "straight", *GAN, check=True)
    return project


def final_state(project, tag):
    """The last checkpoint's models and optimizers, by the names the script tracked them under."""
    ckpt = load_checkpoint(project.run_dir(tag, 0) / "checkpoint/epoch_last.pth")
    assert ckpt["epoch"] == 3 and not ckpt.get("step")
    return {name: ckpt[name] for name in ("generator", "discriminator", "ema", "g_opt", "d_opt")}


def assert_equal_trees(a, b, where=""):
    """Nested state_dicts equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_equal_trees(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_equal_trees(x, y, f"{where}/{k}")
    else:
        assert a == b, where


def test_the_gan_records_its_own_metrics_and_its_ema(gan):
    record = gan.record("straight", 0)
    assert record["status"] == "finished", record.get("error")
    metrics = record["metrics"]
    for key in ("last/train_d_loss", "last/train_g_loss", "last/val_mmd", "last/val_ema_mmd",
                "best/val_ema_mmd", "test/mmd", "test/ema_mmd"):
        assert key in metrics, key
    assert metrics["last/val_ema_mmd"] != metrics["last/val_mmd"]  # the EMA's weights are its own
    state = final_state(gan, "straight")
    assert state["g_opt"]["state"] and state["d_opt"]["state"]  # both optimizers, by name


def test_the_ema_is_checkpointed_whole(gan):
    """An AveragedModel's state_dict: its copy's weights under module., and how many it averaged."""
    ema = final_state(gan, "straight")["ema"]
    assert "n_averaged" in ema and int(ema["n_averaged"]) == 3 * 16  # one update a step


@pytest.mark.parametrize("where", ["2:8", "3:2"])
def test_the_gan_and_its_ema_continue_bit_identical_after_kill_9(gan, where):
    """2:8: from a step checkpoint of epoch 2; 3:2: from epoch 2's end."""
    tag = continued_like_straight(gan, where, *GAN)
    assert_equal_trees(final_state(gan, tag), final_state(gan, "straight"))


# --- 3. an IterableDataset of random windows with its own state_dict() (code/examples/windows.py)

WINDOWS = ["epochs=3", "batch_size=64", "lr=3e-3", "best_metric=val/loss", "best_mode=min", *STEPS]  # 8 steps an epoch


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    project = ported(tmp_path_factory.mktemp("windows"), "windows.py")
    project.cli("run", "-f", "straight", *WINDOWS, check=True)
    return project


def test_the_windows_run_finishes_with_its_metrics(windows):
    record = windows.record("straight", 0)
    assert record["status"] == "finished", record.get("error")
    assert {"last/train_loss", "last/val_loss", "last/val_rmse", "test/loss", "test/rmse"} <= set(record["metrics"])
    assert record["metrics"]["test/rmse"] < 0.5, record["metrics"]  # it learned the sines
    ckpt = load_checkpoint(windows.run_dir("straight", 0) / "checkpoint/epoch_last.pth")
    assert ckpt["ranks"][0]["data"]["drawn"] == 0  # an epoch's end: the next one draws afresh


@pytest.mark.parametrize("where", ["2:5", "3:2"])
def test_the_windows_continue_bit_identical_after_kill_9(windows, where):
    """2:5: from the step checkpoint at step 3 of epoch 2 (192 windows drawn); 3:2: from epoch 2's end."""
    continued_like_straight(windows, where, *WINDOWS)


# --- 4. a metric of the whole split, not of batches: ROC-AUC (code/examples/auc.py)

AUC = ["epochs=3", "batch_size=64", "lr=1e-2", "best_metric=val/auc", "best_mode=max", *STEPS]  # 7 steps an epoch
AUC_CHECKS = '''"""Checks of the AUC example's keys (code/examples/auc.py)."""
from utils.settings import number, one_of


def check(cfg):
    number(cfg, "lr", above=0)
    one_of(cfg, "best_metric", ["train/loss", "train/auc", "val/loss", "val/auc"])
'''


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    project = ported(tmp_path_factory.mktemp("auc"), "auc.py", args_process=AUC_CHECKS)
    project.cli("run", "-f", "straight", *AUC, check=True)
    return project


def test_the_auc_example_decides_its_best_by_val_auc(cancer):
    record = cancer.record("straight", 0)
    metrics = record["metrics"]
    assert record["status"] == "finished" and 0.9 < metrics["test/auc"] <= 1.0, metrics
    assert {"last/train_auc", "last/train_loss", "best/val_auc"} <= metrics.keys()
    best = max(v for (k, _), v in curves(cancer, "straight").items() if k == "val/auc")  # TensorBoard: float32
    assert metrics["best/val_auc"] == pytest.approx(best, rel=1e-6)


@pytest.mark.parametrize("where", ["2:5", "3:2"])
def test_a_continued_epoch_reports_the_same_train_auc(cancer, where):
    """2:5: from epoch 2's step 3, whose checkpoint holds the 3 batches' predictions so far."""
    tag = "kill" + where.replace(":", "_")
    record, _ = killed_and_continued(cancer, tag, f"{where}:kill", *AUC)
    assert learned(record) == learned(cancer.record("straight", 0))
    assert curves(cancer, tag) == curves(cancer, "straight")
