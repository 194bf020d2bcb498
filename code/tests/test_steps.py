"""Step checkpoints: a run killed or stopped inside an epoch continues from the exact step, to the
metrics of the run never interrupted, bit for bit (CPU, fixed seed); also over 2 DDP processes.

The project's epoch.py gets one line that stops its own run at a chosen step, so that every kill
lands where the test says, inside an epoch: `STOP_AT=<epoch>:<step>:kill` SIGKILLs main.py's
process group in the middle of that step (after a backward, before the optimizer step);
`...:ctrl-c` sends it SIGINT, as `run` does when its terminal gets a Ctrl-C.
"""
import random
import re

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import learned, make_project
from utils.checkpoints import load as load_checkpoint

RUN = ["epochs=4", "checkpoint_steps=3", "checkpoint_interval=0"]  # 20 steps an epoch on digits
STEPS = ["max_steps=70", "eval_every=15", "log_every=5", "warmup_steps=10", "checkpoint_steps=4",
         "checkpoint_interval=0"]  # the step clock: 3.5 epochs, evaluations inside them
DDP = ["--nproc", "2", "epochs=3", "checkpoint_steps=2", "checkpoint_interval=0"]  # 10 steps a rank
DDP_STEPS = ["--nproc", "2", "max_steps=24", "eval_every=7", "log_every=3", "warmup_steps=5", "checkpoint_steps=2",
             "checkpoint_interval=0"]  # 2.4 epochs of 10 steps a rank; evaluations at 7, 14, 21, 24
BACKWARD = "        scaler.scale(loss / args.grad_accum).backward()\n"
STOP = BACKWARD + """        at = os.environ.get("STOP_AT", "").split(":")  # tests only: see code/tests/test_steps.py
        if at[:2] == [desc.split()[1], str(run.in_epoch + 1)] and os.environ.get("RANK", "0") == "0":
            os.killpg(0, signal.SIGKILL if at[2] == "kill" else signal.SIGINT)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project whose epoch.py can stop its run at a step, and the metrics of runs never stopped."""
    project = make_project(tmp_path_factory.mktemp("steps") / "project")
    epoch_py = project.root / "code/epoch.py"
    text = epoch_py.read_text().replace("import sys\n", "import os\nimport signal\nimport sys\n", 1)
    assert BACKWARD in text
    project.commit("code/epoch.py", text.replace(BACKWARD, STOP, 1), "stop at a step")
    project.cli("run", "-f", "straight", *RUN, check=True)
    project.cli("run", "-f", "bysteps", *STEPS, check=True)
    return project


def curves(project, tag, id=0):
    """Every scalar a run's TensorBoard files hold (a continued run has two), as TensorBoard shows
    them: each tag's (step, value) points in order, the interrupted stretch once (purge_step).
    The machine's own figures (time, memory, system) aside: they differ between any two runs."""
    events = EventAccumulator(str(project.run_dir(tag, id) / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {key: [(e.step, e.value) for e in events.Scalars(key)] for key in events.Tags()["scalars"]
            if not key.startswith(("time/", "memory/", "system/"))}


def stopped_at(project, tag, where, *run):
    """`run -f tag` stopped by STOP_AT=where; the record."""
    out = project.cli("run", "-f", tag, *run, env={"STOP_AT": where})
    assert out.returncode != 0, out.stdout
    return project.record(tag, 0)


def continued(project, tag):
    """`con tag` to its end: the record, and where the log says it continued from."""
    project.cli("con", tag, check=True)
    log = (project.run_dir(tag, 0) / "log").read_text()
    return project.record(tag, 0), re.findall(r"continuing after epoch (\d+)(?:, at step (\d+))?", log)[-1]


@pytest.mark.slow
def test_runs_killed_at_10_random_steps_inside_epochs_continue_bit_identical(project):
    straight = learned(project.record("straight", 0))
    moments = random.Random(14)
    from_steps = 0
    for i in range(10):
        epoch, step = moments.randint(1, 4), moments.randint(4, 19)  # never an epoch's first or last step
        tag = f"kill{i}"
        record = stopped_at(project, tag, f"{epoch}:{step}:kill", *RUN)
        assert record["status"] != "finished"
        record, (after, at) = continued(project, tag)
        assert record["status"] == "finished", (epoch, step)
        assert learned(record) == straight, (epoch, step)  # JSON floats: equal is bit-identical
        assert curves(project, tag) == curves(project, "straight"), (epoch, step)
        # it went on from before the kill: a step file of that epoch unless its write had not landed
        assert (int(after), int(at or 0)) <= (epoch - 1, step - 1), (epoch, step, after, at)
        from_steps += bool(at)
    assert from_steps >= 5, f"only {from_steps} of 10 continued from inside an epoch"


def test_ctrl_c_inside_an_epoch_writes_a_step_checkpoint_and_ends_interrupted(project):
    record = stopped_at(project, "ctrlc", "2:7:ctrl-c", *RUN)
    assert record["status"] == "interrupted" and record["epoch"] == 1
    checkpoint = project.run_dir("ctrlc", 0) / "checkpoint"
    last = (checkpoint / "epoch_last.pth").resolve()
    assert re.fullmatch(r"epoch_2_step_(\d+)\.pth", last.name), last.name  # not epoch 1's end
    ckpt = load_checkpoint(last)
    assert ckpt["epoch"] == 1 and ckpt["step"] >= 7 and len(ckpt["ranks"]) == 1 and "data" in ckpt["ranks"][0]
    assert (checkpoint / "epoch_best.pth").resolve().name == "epoch_1.pth"
    listed = project.cli("expels", "ctrlc", check=True).stdout
    assert f" 1+{ckpt['step']} " in listed, listed  # its checkpoint: after epoch 1, steps into epoch 2
    record, (after, at) = continued(project, "ctrlc")
    assert (after, int(at)) == ("1", ckpt["step"])
    assert learned(record) == learned(project.record("straight", 0))
    assert curves(project, "ctrlc") == curves(project, "straight")


def test_a_checkpoint_from_before_step_checkpoints_still_continues(project):
    """A checkpoint without the clock's newer counters (no step, no global step count, no data
    position: as an epoch's end was written before step checkpoints) is an epoch's end: `con`
    goes on from it as it always did."""
    stopped_at(project, "old", "3:5:kill", *RUN)
    checkpoint = project.run_dir("old", 0) / "checkpoint"
    for path in checkpoint.glob("epoch_*_step_*.pth"):
        path.unlink()
    old_keys = {"model", "optimizer", "scheduler", "epoch", "best", "best_epoch", "stale", "ranks"}
    for path in checkpoint.glob("epoch_[0-9].pth"):
        old = {k: v for k, v in torch.load(path, weights_only=True).items() if k in old_keys}  # read whole:
        old["ranks"] = [{"rng": part["rng"]} for part in old["ranks"]]
        torch.save(old, path)  # this overwrites the file in place, which a memory-mapped load must not see
    (checkpoint / "epoch_last.pth").unlink()
    (checkpoint / "epoch_last.pth").symlink_to("epoch_2.pth")
    record, (after, at) = continued(project, "old")
    assert (after, at) == ("2", "")
    assert learned(record) == learned(project.record("straight", 0))


@pytest.mark.slow
def test_a_ddp_run_killed_inside_epochs_continues_bit_identical(project):
    """2 processes (gloo): each rank goes on from its own shard's position at the same step."""
    project.cli("run", "-f", "ddp", *DDP, check=True)
    straight = learned(project.record("ddp", 0))
    moments = random.Random(1414)
    for i in range(3):
        epoch, step = moments.randint(1, 3), moments.randint(4, 9)
        record = stopped_at(project, f"ddpkill{i}", f"{epoch}:{step}:kill", *DDP)
        assert record["status"] != "finished" and record["world_size"] == 2
        ckpt = load_checkpoint(project.run_dir(f"ddpkill{i}", 0) / "checkpoint/epoch_last.pth")
        assert len(ckpt["ranks"]) == 2 and (not ckpt["step"] or all("data" in part for part in ckpt["ranks"]))
        record, _ = continued(project, f"ddpkill{i}")
        assert record["status"] == "finished" and record["world_size"] == 2
        assert learned(record) == straight, (epoch, step)
        assert curves(project, f"ddpkill{i}") == curves(project, "ddp"), (epoch, step)


@pytest.mark.slow
def test_a_ddp_step_run_killed_at_random_steps_continues_bit_identical(project):
    """2 processes (gloo) on the step clock: evaluations and log steps inside epochs, killed at
    random global steps; `con` ends with the metrics and every TensorBoard curve of the run never
    stopped, each step once."""
    project.cli("run", "-f", "ddpsteps", *DDP_STEPS, check=True)
    straight, lines = project.record("ddpsteps", 0), curves(project, "ddpsteps")
    assert straight["step"] == 24 and straight["world_size"] == 2 and straight["evaluations"] == 4
    assert [step for step, _ in lines["val/acc"]] == [7, 14, 21, 24]
    assert [step for step, _ in lines["train/loss"]] == list(range(3, 27, 3))
    moments = random.Random(2525)
    for i in range(3):
        at = moments.randint(4, 23)  # a global step after the first checkpoint (2); the kill lands inside it
        epoch, step = (at - 1) // 10 + 1, (at - 1) % 10 + 1
        tag = f"ddpstepkill{i}"
        record = stopped_at(project, tag, f"{epoch}:{step}:kill", *DDP_STEPS)
        assert record["status"] != "finished" and record["world_size"] == 2, at
        record, _ = continued(project, tag)
        assert record["status"] == "finished" and record["world_size"] == 2 and record["step"] == 24, at
        assert learned(record) == learned(straight), at
        assert curves(project, tag) == lines, at


def test_bf16_with_gradient_accumulation_continues_bit_identical_after_kill_9(project):
    """Autocast to bf16 on the CPU and an optimizer step every 2 batches: killed in the middle of
    step 6 of epoch 2 (between its two batches' backwards), `con` ends as the run never stopped."""
    mixed = ["epochs=3", "precision=bf16", "grad_accum=2", "checkpoint_steps=3", "checkpoint_interval=0"]
    project.cli("run", "-f", "mixed", *mixed, check=True)
    straight = project.record("mixed", 0)
    assert straight["hparams"]["precision"] == "bf16" and straight["effective_batch"] == 128
    out = project.cli("run", "-f", "mixed", *mixed, env={"STOP_AT": "2:6:kill"})
    assert out.returncode != 0
    ckpt = load_checkpoint(project.run_dir("mixed", 1) / "checkpoint/epoch_last.pth")
    assert (ckpt["epoch"], ckpt["step"]) == (1, 3)  # steps 1-3 of epoch 2: six batches; step 6 never ended
    record = project.cli("con", "mixed/1", check=True) and project.record("mixed", 1)
    assert record["status"] == "finished" and learned(record) == learned(straight)


def test_a_step_checkpoint_of_2_processes_is_not_continued_by_1(project):
    """The data position of 2 shards does not map onto 1: `con --nproc 1` goes on from the
    newest epoch's end instead, and says which file it skipped."""
    stopped_at(project, "shrink", "2:6:ctrl-c", "--nproc", "2", "epochs=2", "checkpoint_steps=2",
               "checkpoint_interval=0", "keep_checkpoints=0")
    assert (project.run_dir("shrink", 0) / "checkpoint/epoch_last.pth").resolve().name.startswith("epoch_2_step_")
    out = project.cli("con", "shrink", "--nproc", "1", check=True)
    record = project.record("shrink", 0)
    assert record["status"] == "finished" and record["world_size"] == 1
    assert re.search(r"skipped checkpoint/epoch_2_step_\d+\.pth \(inside an epoch, by 2 processes, not 1\)",
                     out.stderr + (project.run_dir("shrink", 0) / "log").read_text())


@pytest.mark.slow
def test_a_step_run_killed_at_10_random_steps_continues_bit_identical(project):
    """max_steps, eval_every, log_every, warm-up: killed anywhere, `con` ends with the metrics and
    every TensorBoard curve of the run never stopped, each step shown once."""
    straight, lines = project.record("bysteps", 0), curves(project, "bysteps")
    assert straight["step"] == 70 and straight["max_steps"] == 70 and straight["evaluations"] == 5
    assert [step for step, _ in lines["val/acc"]] == [15, 30, 45, 60, 70]
    assert [step for step, _ in lines["train/loss"]] == list(range(5, 75, 5))  # log_every, not at evaluations
    assert straight["metrics"]["best/step"] in (15, 30, 45, 60, 70)
    moments = random.Random(25)
    for i in range(10):
        at = moments.randint(6, 68)  # a global step after the first checkpoint (4); the kill lands inside it
        epoch, step = at // 20 + 1, at % 20 or 1
        tag = f"stepkill{i}"
        assert stopped_at(project, tag, f"{epoch}:{step}:kill", *STEPS)["status"] != "finished"
        record, _ = continued(project, tag)
        assert record["status"] == "finished", at
        assert learned(record) == learned(straight), at
        assert curves(project, tag) == lines, at
    listed = project.cli("expels", "bysteps", check=True).stdout
    assert " step 70/70 " in listed and f"@step {straight['metrics']['best/step']}" in listed, listed


def test_an_epoch_run_continued_shows_each_step_once(project):
    """The epochs' scalars sit on the optimizer-step axis beside the log steps', and the stretch a
    continued run trains again is TensorBoard's once (purge_step), not twice."""
    logged = [*RUN, "log_every=4"]
    project.cli("run", "-f", "logged", *logged, check=True)
    stopped_at(project, "once", "3:11:kill", *logged)  # 4 steps logged after its checkpoint at 3:9
    continued(project, "once")
    lines = curves(project, "once")
    assert [step for step, _ in lines["val/acc"]] == [20, 40, 60, 80]
    assert [step for step, _ in lines["train/loss"]] == list(range(4, 84, 4))
    assert [value for _, value in lines["epoch"] if value.is_integer()] == [1, 2, 3, 4]
    assert lines == curves(project, "logged")
