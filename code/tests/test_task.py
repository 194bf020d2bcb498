"""The template for any task: metrics as the epoch returns them (a regression example beside the
classification demo), the training switches, figures and hardware metrics in TensorBoard."""
import json
import subprocess

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import PYTHON, assert_one_line_mistake, need, watched

REGRESSION = ["data=diabetes", "model=mlp", "best_metric=val/mse", "best_mode=min", "epochs=25", "figure_every=25"]


def events(project, tag, id=0):
    found = EventAccumulator(str(project.run_dir(tag, id) / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    found.Reload()
    return found


def constant_predictor_mse(project):
    """The test MSE of always predicting the training targets' mean: what a model must beat."""
    script = """
import json, sys
sys.path.insert(0, "code")
import dataloader
from utils import overrides, settings
args = settings.process(overrides.apply(overrides.load_config(), {"data": "diabetes", "model": "mlp", "best_metric": "val/mse"}))
train, _, test, _ = dataloader.build(args, 0)
mean = train.dataset.tensors[1].mean()
print(json.dumps(float((test.dataset.tensors[1] - mean).pow(2).mean())))
"""
    out = subprocess.run([PYTHON, "-c", script], cwd=project.root, capture_output=True, text=True,
                         env=project.env(), check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_the_regression_example_beats_a_constant_and_picks_the_lowest_val_mse(shared_project):
    project = shared_project
    project.cli("run", "reg", *REGRESSION, check=True)
    record = project.record("reg", 0)
    metrics = record["metrics"]
    assert {"test/loss", "test/mse", "test/mae", "best/val_mse", "last/train_mae"} <= set(metrics)
    assert "test/acc" not in metrics
    baseline = constant_predictor_mse(project)
    assert metrics["test/mse"] < 0.8 * baseline, (metrics["test/mse"], baseline)
    curve = {e.step: e.value for e in events(project, "reg").Scalars("val/mse")}
    lowest = min(curve, key=curve.get)  # best_mode=min: the evaluation with the lowest val/mse
    per_epoch = record["step"] // record["epoch"]
    assert metrics["best/step"] == lowest and metrics["best/epoch"] == lowest // per_epoch and len(curve) == 25
    assert metrics["best/val_mse"] == pytest.approx(curve[lowest], rel=1e-6)
    assert f"val/mse {metrics['best/val_mse']:.4f} @{lowest // per_epoch}" in project.cli("expels", "reg", check=True).stdout
    [figure] = events(project, "reg").Images("val/predicted")  # matplotlib, drawn on the writer thread
    assert figure.step == record["step"] and figure.encoded_image_string.startswith(b"\x89PNG") and figure.width == 320


@pytest.mark.parametrize("change, what", [
    (["precision=fp16", "device=cpu"], "invalid config value precision='fp16' — use fp32 or bf16 on a CPU"),
    (["best_metric=val/mse"], "invalid config value best_metric='val/mse' — use one of train/loss, train/acc"),
    (["data=diabetes", "model=mlp"], "invalid config value best_metric='val/acc' — use one of train/loss, "
                                     "train/mse, train/mae, val/loss, val/mse, val/mae"),
    (["grad_accum=0"], "invalid config value grad_accum=0 — use a number > 0"),
    (["compile=1"], "override compile=1 is of type int, config.py has bool"),
])
def test_a_switch_or_metric_the_run_cannot_have_is_one_line_before_anything_is_written(project, change, what):
    out = project.cli("run", "bad", *change)
    assert_one_line_mistake(out, what)
    assert not (project.root / "__result__").exists() and "bad" not in project.git("tag")


def test_a_figure_and_the_hardware_metrics_land_in_tensorboard(shared_project):
    project = shared_project
    project.cli("run", "fig", "epochs=2", "figure_every=1", check=True)
    found = events(project, "fig")
    images = found.Images("val/confusion")  # the confusion matrix, a PNG per epoch: 10 classes of 16 pixels
    assert [i.step for i in images] == [20, 40] and images[0].encoded_image_string.startswith(b"\x89PNG")
    assert (images[0].width, images[0].height) == (160, 160)
    scalars = found.Tags()["scalars"]
    assert {"system/cpu_percent", "system/ram_mb"} <= set(scalars)
    ram = [e.value for e in found.Scalars("system/ram_mb")]  # sampled in the background from 0.2 s on
    assert ram and all(100 < mb < 24 * 1024 for mb in ram)  # a torch process: more than 100 MB
    record = project.record("fig", 0)
    assert record["metrics"]["last/system_ram_mb"] == pytest.approx(ram[-1], rel=1e-6)
    assert "last/system_gpu_util" not in record["metrics"]  # no GPU: fewer metrics, no error


def compiles(project):
    """Whether torch.compile works here: inductor needs a C compiler and Python's headers."""
    script = "import torch\nf = torch.compile(lambda x: x * 2)\nprint(f(torch.ones(2)).sum().item())"
    out = watched([PYTHON, "-c", script], env=project.env())
    return out.returncode == 0, out.stderr.strip().splitlines()[-1:] or ["?"]


@pytest.mark.slow
def test_compile_trains_and_checkpoints_the_plain_model(shared_project):
    project = shared_project
    works, why = compiles(project)
    need(f"torch.compile ({why[0]})", works)
    project.cli("run", "-f", "comp", "epochs=2", "compile=True", check=True)
    record = project.record("comp", 0)
    assert record["status"] == "finished" and record["hparams"]["compile"] is True
    assert record["metrics"]["test/acc"] > 0.5
    from utils.checkpoints import load
    weights = load(project.run_dir("comp", 0) / "checkpoint/epoch_last.pth")["model"]
    assert not any(k.startswith("_orig_mod.") for k in weights)  # loads into the model as written
