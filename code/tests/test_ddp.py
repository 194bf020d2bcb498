"""One run over several processes (DDP, gloo on CPU, real torch.distributed.run)."""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import PYTHON, communicate, finish, learned, wait_for

RUN = ["--nproc", "2", "epochs=4", "keep_checkpoints=0", "checkpoint_interval=0"]


def epoch_of(project, tag, id):
    try:
        return project.record(tag, id)["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def leftovers(project):
    """Processes still running code of this project."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(project.root) in cmdline and "main.py" in cmdline:
                found.append(proc.name)
    return found


@pytest.fixture(scope="module")
def reference(shared_project):
    """An uninterrupted 2-process fixed-seed run."""
    shared_project.cli("run", "-f", "ddp", *RUN, check=True)
    return shared_project


def test_two_processes_make_one_run(reference):
    rec = reference.record("ddp", 0)
    folder = reference.run_dir("ddp", 0)
    assert rec["status"] == "finished" and rec["world_size"] == 2 and rec["nnodes"] == 1
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint", "lock", "log", "statistic.json", "tensorboard"]
    assert len(list((folder / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (folder / "checkpoint").iterdir()) == [
        "epoch_1.pth", "epoch_2.pth", "epoch_3.pth", "epoch_4.pth", "epoch_best.pth", "epoch_last.pth"]
    log = (folder / "log").read_text()
    assert log.count("epoch 4/4") == 1  # one copy of every line: rank 0's
    ckpt = torch.load(folder / "checkpoint/epoch_last.pth", weights_only=True)
    assert len(ckpt["ranks"]) == 2 and not any(k.startswith("module.") for k in ckpt["model"])


def test_test_accuracy_is_over_the_whole_split(reference):
    """Rank 0's figure is the whole test split's: evaluate the saved best model in one process."""
    code = reference.root / "code"
    script = f"""
import json, sys
sys.path.insert(0, {str(code)!r})
import dataloader, epoch, model
from utils.checkpoints import load as load_checkpoint
from utils import overrides, settings
rec = json.load(open({str(reference.run_dir('ddp', 0) / 'statistic.json')!r}))
args = settings.process(overrides.apply(overrides.load_config(), rec["overrides"]))
_, _, test, _ = dataloader.build(args, rec["seed"])
net = model.build(args)
net.load_state_dict(load_checkpoint({str(reference.run_dir('ddp', 0) / 'checkpoint/epoch_best.pth')!r})["model"])
print(json.dumps(epoch.evaluate(net, test, args)))
"""
    out = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, check=True, env=reference.env())
    loss, acc = json.loads(out.stdout.strip().splitlines()[-1]).values()
    metrics = reference.record("ddp", 0)["metrics"]
    assert acc == pytest.approx(metrics["test/acc"], rel=1e-12)  # the whole split: a shard differs by > 1%
    assert loss == pytest.approx(metrics["test/loss"], rel=1e-6)


def test_killed_run_continues_to_identical_metrics(reference):
    proc = reference.start("run", "-f", "ddp", *RUN)
    wait_for(lambda: epoch_of(reference, "ddp", 1) >= 2)
    os.killpg(os.getpgid(reference.record("ddp", 1)["pid"]), signal.SIGKILL)  # launcher and ranks
    proc.kill()
    proc.wait()
    assert reference.record("ddp", 1)["status"] == "running"  # nobody could say otherwise: `dead`
    # the launcher's death stops torch.distributed.run and the other rank; then the lock is free
    wait_for(lambda: " dead " in reference.cli("expels", "ddp").stdout, timeout=60, what="ddp/1 to be dead")
    out = reference.cli("continue", "ddp", check=True)
    rec = reference.record("ddp", 1)
    assert rec["status"] == "finished" and rec["world_size"] == 2, out.stdout
    assert learned(rec) == learned(reference.record("ddp", 0))
    assert len(list((reference.run_dir("ddp", 1) / "tensorboard").glob("events.*"))) == 2


@pytest.mark.slow
def test_interrupted_two_process_run_continues_in_one(project):
    proc = project.start("run", "-f", "shrink", "--nproc", "2", "epochs=30")
    wait_for(lambda: epoch_of(project, "shrink", 0) >= 2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert finish(proc) != 0
    rec = project.record("shrink", 0)
    assert rec["status"] == "interrupted"
    assert not leftovers(project)
    out = project.cli("continue", "shrink/0", "--nproc", "1", check=True)
    rec = project.record("shrink", 0)
    assert rec["status"] == "finished" and rec["world_size"] == 1 and rec["epoch"] == 30, out.stdout
    assert "continuing after epoch" in (project.run_dir("shrink", 0) / "log").read_text()


@pytest.mark.slow
def test_a_crashing_rank_fails_the_run_and_leaves_no_process(project):
    epoch_py = project.root / "code/epoch.py"
    text = epoch_py.read_text().replace(
        "    model.train()\n",
        "    model.train()\n    import os\n    if os.environ.get('RANK') == '1':\n"
        "        raise RuntimeError('rank 1 exploded')\n", 1)
    project.commit("code/epoch.py", text, "a rank that raises")
    out = project.cli("run", "boom", "--nproc", "2", "epochs=3")
    assert out.returncode != 0
    rec = project.record("boom", 0)
    assert rec["status"] == "failed"
    log = (project.run_dir("boom", 0) / "log").read_text()
    assert "[rank 1] Traceback" in log and "RuntimeError: rank 1 exploded" in log
    time.sleep(0.5)
    assert not leftovers(project)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_make_one_run(project):
    master = f"127.0.0.1:{free_port()}"
    nodes = [project.start("run", "-f", "multi", "--nnodes", "2", "--node-rank", str(r), "--master", master,
                   "--nproc", "1", "epochs=2", OMP_NUM_THREADS="1")  # two "machines" share 2 cores
             for r in (0, 1)]
    outputs = [communicate(n) for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], outputs
    assert sorted(p.name for p in (project.root / "__result__/multi").iterdir()) == ["0"]
    rec = project.record("multi", 0)
    assert rec["status"] == "finished" and rec["world_size"] == 2 and rec["nnodes"] == 2
