"""sweep: the YAML format (in-process, no runs), then real sweeps of real runs in a fresh project,
on CPU workers, on pretend GPUs (device=cpu) and on a Ray cluster this test starts and stops."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import Progress, communicate, finish, need_module, stretched, watched

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/: the template's modules

from utils import overrides  # noqa: E402
from utils.sweep import plan  # noqa: E402
from utils.errors import UserError  # noqa: E402

CONFIG = overrides.load_config()


def parse(text):
    return plan.parse(text, CONFIG, name="s.yaml")


def error(text):
    with pytest.raises(UserError) as err:
        parse(text)
    return str(err.value)


# --- the file format ---------------------------------------------------------------------------

def test_a_document_is_the_product_of_its_lists_in_file_order():
    assert parse("optimizer: [sgd, adam]\nchannels: [8, 16, 32]\n") == [
        {"optimizer": o, "channels": c} for o in ("sgd", "adam") for c in (8, 16, 32)]


def test_documents_are_united_without_repeats_in_a_stable_order():
    text = "lr: [0.1, 0.2]\noptimizer: [sgd]\n---\noptimizer: [sgd, adam]\nlr: [0.2]\n---\n"
    assert parse(text) == [{"lr": 0.1, "optimizer": "sgd"}, {"lr": 0.2, "optimizer": "sgd"},
                           {"optimizer": "adam", "lr": 0.2}]  # {sgd, 0.2} of document 2 is a repeat
    assert parse(text) == parse(text)


def test_default_goes_into_every_run_and_a_document_overrides_it():
    combos = parse("default:\n  epochs: 3\n  lr: 0.5\n---\nchannels: [4, 8]\n---\nlr: [0.1]\n")
    assert combos == [{"epochs": 3, "lr": 0.5, "channels": 4}, {"epochs": 3, "lr": 0.5, "channels": 8},
                      {"epochs": 3, "lr": 0.1}]


def test_values_are_those_the_command_line_gives():
    # YAML 1.1 reads 1e-3 as a string; an int for a float key becomes a float, as `run lr=1` does
    assert parse("lr: [1e-3, 1]\n") == [{"lr": 0.001}, {"lr": 1.0}]
    config = {**CONFIG, "note": ""}  # a free string key: `data` must now name real data
    for combo in plan.parse("note: ['3', 'True', x, ' a']\nlr: [0.25]\n", config, name="s.yaml"):
        assert overrides.parse(overrides.words(combo), config) == combo


@pytest.mark.parametrize("text, names", [
    ("lr: [0.1]\n---\nlrr: [0.1]\n", ["document 2", "'lrr'", "did you mean lr"]),
    ("lr: 0.1\n", ["document 1", "'lr'", "not a list"]),
    ("lr: []\n", ["document 1", "'lr'", "not a list"]),
    ("channels: [8]\n---\nlr: [fast]\n", ["document 2", "lr='fast'", "float"]),
    ("optimizer: [sgd, rmsprop]\n", ["document 1", "optimizer='rmsprop'", "adam, adamw, sgd"]),
    ("lr: [0.1]\n---\ndefault: {epochs: 2}\n", ["document 2", "default"]),
    ("default: {epochz: 2}\n---\nlr: [0.1]\n", ["document 1", "'epochz'"]),
    ("- lr\n", ["document 1", "not a mapping"]),
    ("default: {epochs: 2}\n", ["no combination"]),
    ("lr: [0.1\n", ["not valid YAML"]),
])
def test_a_mistake_names_the_file_document_and_key(text, names):
    message = error(text)
    assert "s.yaml" in message and " — " in message
    for name in names:
        assert name in message


def test_the_example_sweep_file_parses():
    combos = plan.load(Path(__file__).resolve().parents[1] / "sweeps" / "lr.yaml", CONFIG)
    assert len(combos) == 6 and all(c["epochs"] == 10 for c in combos)


# --- the command, without runs -----------------------------------------------------------------

FOUR = "default: {epochs: 2, device: cpu}\n---\nlr: [0.002, 0.004]\nchannels: [8, 16]\n"


def sweep_file_in(project, name, text):
    (project.root / "code" / "sweeps").mkdir(exist_ok=True)
    project.commit(f"code/sweeps/{name}.yaml", text, f"sweep {name}")
    return f"code/sweeps/{name}.yaml"


def records(project, tag):
    base = project.root / "__result__" / tag
    ids = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []
    return [project.record(tag, i) for i in ids]


def test_dry_run_lists_the_combinations_and_writes_nothing(project):
    path = sweep_file_in(project, "four", FOUR)
    out = project.cli("sweep", "dry", path, "--dry-run", check=True)
    assert "4 to run" in out.stdout
    assert "epochs=2 device=cpu lr=0.004 channels=16" in out.stdout
    assert not (project.root / "__result__").exists()
    assert project.git("tag") == ""


@pytest.mark.parametrize("flags, what", [
    (["--per-gpu", "2"], "--per-gpu without --gpus"),
    (["--gpus", "0,1", "--workers", "2"], "--workers with --gpus"),
    (["--workers", "0"], "--workers 0"),
    (["--address", "1.2.3.4:6379"], "--address without --backend ray"),
    (["--backend", "ray", "--address", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),
])
def test_a_wrong_flag_is_one_line_before_anything(project, flags, what):
    if "--backend" in flags:  # without Ray the line would say to install it instead
        need_module("ray")
    path = sweep_file_in(project, "four", FOUR)
    out = project.cli("sweep", "flags", path, *flags)
    assert out.returncode == 2 and what in out.stderr and len(out.stderr.splitlines()) == 1
    assert not (project.root / "__result__").exists()


def test_a_dirty_tree_or_a_tag_elsewhere_is_refused_up_front(project):
    path = sweep_file_in(project, "four", FOUR)
    (project.root / "code" / "notes.txt").write_text("not committed\n")
    out = project.cli("sweep", "dirty", path)
    assert out.returncode == 2 and "uncommitted" in out.stderr and "notes.txt" in out.stderr
    (project.root / "code" / "notes.txt").unlink()
    project.git("tag", "-a", "old", "-m", "old", "HEAD")
    project.commit("code/notes.txt", "later\n", "a later commit")
    out = project.cli("sweep", "old", path)
    assert out.returncode == 2 and "already marks commit" in out.stderr
    assert not (project.root / "__result__").exists()


ONE = "default: {epochs: 1, device: cpu}\n---\nlr: [0.002]\n"


def unreproducible(project, tmp_path, where):
    """A sweep file the tag would not hold, made as `where` says; its path as given to `sweep`."""
    if where == "outside code/, committed":
        project.commit("one.yaml", ONE, "a sweep file at the top")
        return "one.yaml"
    if where == "outside the repository":
        (tmp_path / "one.yaml").write_text(ONE)
        return tmp_path / "one.yaml"
    path = project.root / "code" / "sweeps" / "one.yaml"
    if where == "ignored by git":
        path = project.root / "code" / "sweeps" / "__pycache__" / "one.yaml"  # .gitignore: __pycache__/
    path.parent.mkdir(parents=True, exist_ok=True)
    if where == "changed since committed":
        project.commit("code/sweeps/one.yaml", ONE, "sweep one")
        path.write_text(ONE.replace("0.002", "0.004"))
    else:
        path.write_text(ONE)
    if where == "staged, not committed":
        project.git("add", "code/sweeps/one.yaml")
    return path.relative_to(project.root)


@pytest.mark.parametrize("where, what", [
    ("outside code/, committed", "outside code/"),
    ("outside the repository", "outside code/"),
    ("untracked", "untracked"),
    ("ignored by git", "ignored by git"),
    ("staged, not committed", "uncommitted changes"),
    ("changed since committed", "uncommitted changes"),
])
def test_a_sweep_file_the_tag_would_not_hold_is_refused(project, tmp_path, where, what):
    # the sweep must be repeatable from its tag: the file is committed under code/, as it is
    file = unreproducible(project, tmp_path, where)
    status = project.git("status", "--porcelain")
    out = project.cli("sweep", "one", file)
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("runtag: sweep file ")
    assert what in out.stderr and "one.yaml" in out.stderr and " — " in out.stderr
    assert "--dry-run" in out.stderr.split(" — ")[1]
    assert not (project.root / "__result__").exists() and not (project.root / "__statistic__").exists()
    assert project.git("tag") == "" and project.git("status", "--porcelain") == status


@pytest.mark.parametrize("where", ["outside the repository", "outside code/, committed", "untracked",
                                   "changed since committed"])
def test_dry_run_reads_any_sweep_file_and_writes_nothing(project, tmp_path, where):
    file = unreproducible(project, tmp_path, where)
    status = project.git("status", "--porcelain")
    out = project.cli("sweep", "one", file, "--dry-run", check=True)
    lr = "0.004" if where == "changed since committed" else "0.002"  # the file as it is, not as committed
    assert "1 to run" in out.stdout and f"epochs=1 device=cpu lr={lr}" in out.stdout and out.stderr == ""
    assert not (project.root / "__result__").exists() and not (project.root / "__statistic__").exists()
    assert project.git("tag") == "" and project.git("status", "--porcelain") == status


# --- real sweeps -------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_sweep_runs_every_combination_once_and_a_repeat_runs_nothing(project):
    path = sweep_file_in(project, "four", FOUR)
    out = project.cli("sweep", "four", path, "--workers", "2", check=True)
    done = records(project, "four")
    assert len(done) == 4 and {r["status"] for r in done} == {"finished"}
    assert sorted(json.dumps(r["overrides"], sort_keys=True) for r in done) == sorted(
        json.dumps({"epochs": 2, "device": "cpu", "lr": lr, "channels": c}, sort_keys=True)
        for lr in (0.002, 0.004) for c in (8, 16))
    assert all(r["command"].startswith("run four epochs=2 device=cpu") for r in done)
    assert out.stdout.count("START four/") == 4 and out.stdout.count("DONE  four/") == 4
    listed = (project.root / "__statistic__/exper-list/sweep-four.txt").read_text().split()
    assert sorted(listed) == [f"four/{i}" for i in range(4)]
    table = (project.root / "__statistic__/table/sweep-four.csv").read_text().splitlines()
    assert len(table) == 5 and all(line.count(",finished,") == 1 for line in table[1:])

    again = project.cli("sweep", "four", path, "--workers", "2", check=True)
    assert "0 to run" in again.stdout and "START" not in again.stdout
    assert len(records(project, "four")) == 4


def test_a_failing_run_leaves_the_others_finished_and_the_status_non_zero(project):
    path = sweep_file_in(project, "fails", "default: {epochs: 2, device: cpu}\n---\ndata: [missing, digits]\n")
    (project.root / "__data__/missing").mkdir(parents=True)  # a data folder without its data.npz
    out = project.cli("sweep", "fails", path, "--workers", "2")
    assert out.returncode == 1
    status = {r["overrides"]["data"]: r["status"] for r in records(project, "fails")}
    assert status == {"missing": "failed", "digits": "finished"}
    fail = next(line for line in out.stdout.splitlines() if line.startswith("FAIL"))
    assert "data=missing" in fail and "failed" in fail and "__data__/missing" in fail


@pytest.mark.slow
def test_gpu_workers_each_see_their_gpu(project):
    path = sweep_file_in(project, "gpus", "default: {epochs: 1, device: cpu}\n---\nchannels: [4, 5, 6, 7]\n")
    project.cli("sweep", "gpus", path, "--gpus", "0,1", "--per-gpu", "2", check=True)
    done = records(project, "gpus")
    assert {r["status"] for r in done} == {"finished"}
    assert Counter(r["gpus"] for r in done) == {"0": 2, "1": 2}  # 4 workers: 2 on each GPU


def ctrl_c_once_two_run(project, tag, *options, **env):
    """A 3-run sweep of long runs on 2 workers, sent SIGINT once two runs are training.
    Returns the finished sweep process and its stdout."""
    path = sweep_file_in(project, tag, "default: {epochs: 200, device: cpu}\n---\nchannels: [4, 5, 6]\n")
    sweep = subprocess.Popen([sys.executable, "code/utils/cli.py", "sweep", tag, path, *options, "--workers", "2"],
                             cwd=project.root, env={**project.env(), **env}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        progress = Progress()
        while not (len(started := records(project, tag)) == 2 and all(r["epoch"] >= 1 for r in started)):
            assert not progress.stalled() and sweep.poll() is None, "the two runs did not get going"
            time.sleep(0.5)
    finally:
        sweep.send_signal(signal.SIGINT)
        out, _ = communicate(sweep)
    return sweep, out


def test_ctrl_c_interrupts_the_running_runs_and_starts_no_other(project):
    sweep, out = ctrl_c_once_two_run(project, "long")
    assert sweep.returncode == 130
    assert [r["status"] for r in records(project, "long")] == ["interrupted", "interrupted"]
    assert out.count("FAIL") == 2 and "interrupted" in out


# --- Ray ---------------------------------------------------------------------------------------

@contextmanager
def ray_head(project):
    """A one-node Ray cluster, as the README starts one, ended with every process it started.
    Its tasks' runs see its environment, not the sweep's: the project's (CI: no TensorBoard)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**project.env(), "RAY_AUTH_MODE": "disabled"}  # not ~/.ray/auth_token's: it may or may not exist
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                             "--num-cpus", "2", "--port", str(port), "--node-ip-address", "127.0.0.1",
                             "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # a group of its own: every Ray process, ours to end
    try:
        deadline = time.time() + stretched(90)
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.time() < deadline and head.poll() is None, "ray start --head did not come up"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        head.terminate()  # `ray start --block` stops what it started on SIGTERM
        try:
            finish(head)
        finally:
            end_group(head.pid)


def end_group(pgid):
    deadline = time.time() + stretched(30)
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(pgid, signal.SIGKILL)
    raise AssertionError("Ray processes were still alive after `ray start --block` ended: killed")


@pytest.mark.slow
def test_the_ray_backend_runs_the_sweep_on_a_cluster(project):
    need_module("ray")
    path = sweep_file_in(project, "ray", "default: {epochs: 1, device: cpu}\n---\nchannels: [4, 8]\n")
    with ray_head(project) as (address, env):
        out = watched([sys.executable, "code/utils/cli.py", "sweep", "ray", path,
                       "--backend", "ray", "--address", address], cwd=project.root, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    done = records(project, "ray")
    assert sorted(r["overrides"]["channels"] for r in done) == [4, 8]
    assert {r["status"] for r in done} == {"finished"}
    assert out.stdout.count("DONE  ray/") == 2 and out.stdout.count("START ray/") == 2


@pytest.mark.slow
def test_ctrl_c_reaches_the_runs_of_ray_tasks(project):
    need_module("ray")
    sweep, out = ctrl_c_once_two_run(project, "rlong", "--backend", "ray", "--address", "local",
                                     RAY_AUTH_MODE="disabled")
    assert sweep.returncode == 130
    done = records(project, "rlong")
    assert [r["status"] for r in done] == ["interrupted", "interrupted"]
    for r in done:  # the runs ended themselves; none goes on without the sweep
        with pytest.raises(ProcessLookupError):
            os.kill(r["pid"], 0)
