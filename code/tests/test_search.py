"""Searches (a sweep file with `search:`): real runs on digits asked of Optuna, its journal in
__statistic__/search/<tag>.journal, trials pruned by the sweep through their statistic.json."""
import json
import signal
import subprocess

import pytest

from conftest import PYTHON, assert_one_line_mistake, communicate, make_project, need_module, ok, read_json, wait_for
from utils import overrides
from utils.errors import UserError
from utils.sweep import plan, space

CONFIG = overrides.load_config()


def search_file(method="random", trials=8, prune="none", space_text="lr: loguniform(1e-3, 1e-1)\nchannels: int(8, 32, step=8)\n",
                epochs=1, extra=""):
    return (f"search:\n  method: {method}\n  trials: {trials}\n  metric: best/val_acc\n  goal: max\n  prune: {prune}\n{extra}"
            f"default:\n  epochs: {epochs}\n---\n{space_text}")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    need_module("optuna")
    return make_project(tmp_path_factory.mktemp("search") / "project")


def commit(project, name, text):
    (project.root / "code/sweeps").mkdir(exist_ok=True)
    project.commit(f"code/sweeps/{name}.yaml", text, f"search {name}")
    return f"code/sweeps/{name}.yaml"


def records(project, tag):
    base = project.root / "__result__" / tag
    return [project.record(tag, int(p.name)) for p in sorted(base.iterdir(), key=lambda p: int(p.name))
            if p.name.isdigit()] if base.is_dir() else []


def journal(project, tag):
    """The journal's lines, each parsed: it must be plain JSON lines throughout."""
    return [json.loads(line) for line in (project.root / f"__statistic__/search/{tag}.journal").read_text().splitlines()]


def test_a_random_search_runs_its_budget_once_and_more_when_raised(project):
    path = commit(project, "rand", search_file())
    out = ok(project.cli("sweep", "rand", path, "--workers", "2"))
    done = records(project, "rand")
    assert len(done) == 8 and {r["status"] for r in done} == {"finished"}, out.stdout[-2000:]
    assert all(1e-3 <= r["overrides"]["lr"] <= 1e-1 and r["overrides"]["channels"] in (8, 16, 24, 32)
               and r["overrides"]["epochs"] == 1 for r in done)
    assert len({r["overrides"]["lr"] for r in done}) == 8
    table = (project.root / "__statistic__/table/sweep-rand.csv").read_text().splitlines()
    column = table[0].split(",").index("best/val_acc")
    values = [float(line.split(",")[column]) for line in table[1:]]
    assert len(values) == 8 and values == sorted(values, reverse=True)  # the best trial first
    again = ok(project.cli("sweep", "rand", path, "--workers", "2"))
    assert "8 finished or pruned already, 0 to run" in again.stdout and len(records(project, "rand")) == 8
    more = ok(project.cli("sweep", "rand", path, "--workers", "2", "--trials", "10"))
    assert "10 trials, 8 finished or pruned already, 2 to run" in more.stdout
    assert len(records(project, "rand")) == 10
    ends = [e["state"] for e in journal(project, "rand") if e["op_code"] == 6 and e["state"] != 0]  # 1: COMPLETE
    assert ends == [1] * 10  # each trial's end, once, in the journal's JSON lines


@pytest.mark.slow
def test_a_tpe_search_with_a_fixed_seed_asks_the_same_trials(project):
    path = commit(project, "tpe", search_file(method="tpe", trials=5))
    asked = []
    for tag in ("tpe-a", "tpe-b"):
        ok(project.cli("sweep", "-f", tag, path, "--workers", "1"))
        asked.append([(r["overrides"]["lr"], r["overrides"]["channels"]) for r in records(project, tag)])
    assert len(asked[0]) == 5 and asked[0] == asked[1]


def test_asha_prunes_a_hopeless_trial_before_its_last_epoch(project):
    path = commit(project, "asha", search_file(trials=6, prune="asha", epochs=4, extra="  grace: 1\n  eta: 2\n",
                                                space_text="lr: loguniform(1e-5, 10)\n"))
    out = ok(project.cli("sweep", "-f", "asha", path, "--workers", "2"))
    done = records(project, "asha")
    pruned = [r for r in done if r["status"] == "pruned"]
    assert pruned and all(r["epoch"] < 4 for r in pruned), out.stdout[-3000:]
    assert "PRUNE asha/" in out.stdout
    finished = [r for r in done if r["status"] == "finished"]
    best = max(finished, key=lambda r: r["metrics"]["best/val_acc"])
    assert best["epoch"] == 4 and best["metrics"]["test/acc"] > 0.5
    listed = ok(project.cli("expels", "asha")).stdout
    assert listed.count("pruned") == len(pruned)
    name = f"asha/{pruned[0]['id']}"  # the researcher disagrees: con continues a pruned run
    ok(project.cli("con", name))
    assert project.record("asha", pruned[0]["id"])["status"] == "finished"


def test_ctrl_c_leaves_the_journal_readable_and_the_next_call_resumes(project):
    path = commit(project, "stop", search_file(trials=3, epochs=30))
    sweep = subprocess.Popen([PYTHON, "code/utils/cli.py", "sweep", "stop", path, "--workers", "2"], cwd=project.root,
                             env=project.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: all((r := read_json(project.run_dir("stop", i) / "statistic.json")) and r["epoch"] >= 1
                         for i in (0, 1)), what="two trials training")
    sweep.send_signal(signal.SIGINT)
    out, err = communicate(sweep)
    assert sweep.returncode == 130, out + err
    asked = sorted(r["overrides"]["lr"] for r in records(project, "stop"))
    assert len(asked) == 2 and {r["status"] for r in records(project, "stop")} == {"interrupted"}
    assert journal(project, "stop")  # every line JSON
    resumed = ok(project.cli("sweep", "stop", path, "--workers", "2"))
    assert "3 trials, 0 finished or pruned already, 3 to run" in resumed.stdout
    later = records(project, "stop")[2:]
    assert len(later) == 3 and {r["status"] for r in later} == {"finished"}
    assert set(asked) <= {r["overrides"]["lr"] for r in later}  # the interrupted trials, asked again


@pytest.mark.slow
def test_a_search_on_ray_asks_as_tasks_end(project):
    need_module("ray")
    path = commit(project, "ray", search_file(trials=3))
    out = ok(project.cli("sweep", "rays", path, "--backend", "ray", "--address", "local", "--workers", "2"))
    done = records(project, "rays")
    assert len(done) == 3 and {r["status"] for r in done} == {"finished"}, out.stdout[-2000:]
    assert len([e for e in journal(project, "rays") if e["op_code"] == 6]) == 3


@pytest.mark.parametrize("text, words", [
    (search_file(method="bayes"), ["unknown search method 'bayes'", "grid, random, tpe"]),
    (search_file(space_text="lr: loguniform(0, 1)\n"), ["document 2", "'lr'", "empty range"]),
    (search_file(space_text="lr: uniform(1, 0.1)\n"), ["'lr'", "empty range"]),
    (search_file(space_text="lr: normal(0, 1)\n"), ["'lr'", "not a distribution"]),
    (search_file(space_text="lr: int(1, 5)\n"), ["'lr'", "int(...) for a value that is a float"]),
    (search_file(space_text="channels: uniform(8, 32)\n"), ["'channels'", "for a value that is a int"]),
    (search_file(space_text="channels: int(8, 30, step=8)\n"), ["'channels'", "step that divides"]),
    (search_file(space_text="chanels: [8, 16]\n"), ["document 2", "chanels", "channels"]),
    (search_file(prune="hyperband"), ["unknown search prune 'hyperband'"]),
    (search_file(trials=0), ["search trials is 0"]),
    (search_file(method="grid"), ["method grid with a distribution"]),
    ("search:\n  trials: 4\n  metric: val_acc\n---\nlr: [0.1]\n", ["search metric is 'val_acc'"]),
])
def test_a_bad_search_file_is_one_line(text, words):
    with pytest.raises(UserError) as err:
        plan.parse(text, CONFIG, name="s.yaml")
    for word in words:
        assert word in str(err.value), str(err.value)


def test_a_bad_search_is_refused_before_anything_is_written(project):
    path = commit(project, "bad", search_file(space_text="lr: loguniform(-1, 1)\n"))
    out = project.cli("sweep", "bad", path)
    assert_one_line_mistake(out, "empty range")
    assert not (project.root / "__statistic__/search/bad.journal").exists()
    assert not (project.root / "__result__/bad").exists() and "bad" not in project.git("tag").split()


def test_a_search_file_parses_into_its_space():
    found = plan.parse(search_file(method="tpe", trials=20, space_text="lr: loguniform(1e-4, 1e-1)\n"
                                   "channels: int(16, 64, step=16)\noptimizer: [adam, sgd]\n"), CONFIG)
    assert isinstance(found, space.Search) and (found.method, found.trials, found.goal) == ("tpe", 20, "max")
    assert [str(d) for d in found.space.values()] == ["loguniform(0.0001, 0.1)", "int(16, 64, step=16)", "[adam, sgd]"]
    assert found.default == {"epochs": 1}
    grid = plan.parse("search:\n  method: grid\n  metric: best/val_acc\n---\nlr: [0.1, 0.01]\nchannels: [8, 16]\n", CONFIG)
    assert grid.trials == 4 and grid.grid() == {"lr": [0.1, 0.01], "channels": [8, 16]}


LM = ("search:\n  method: grid\n  metric: best/val_loss\n  goal: min\n  prune: median\n  grace: 1\n"
      "default:\n  data: stdlib\n  model: gpt\n  width: 32\n  layers: 1\n  heads: 2\n  context: 32\n  batch_size: 64\n"
      "  dropout: 0.0\n  max_steps: 200\n  eval_every: 20\n  best_metric: val/loss\n  best_mode: min\n"
      "  figure_every: 0\n---\nlr: {lrs}\n")
LM_EPOCH = -(-(1_350_000 // 32) // 64)  # optimizer steps of one epoch: text.py's windows of the train split


def test_a_language_model_trial_is_pruned_inside_its_first_epoch(project):
    """By steps (evaluations every 20 of an epoch's 660), the median pruner stops a hopeless trial
    (lr 1e-5: still near a uniform guess) long before its first epoch would have ended; by epochs
    it could only have been judged at the epoch's end."""
    path = commit(project, "lmprune", LM.format(lrs="[3e-3, 1e-5]"))  # -f: a grid's order is the seed's, this one
    out = ok(project.cli("sweep", "-f", "lmprune", path, "--workers", "1", env={"OMP_NUM_THREADS": "1"}))
    done = records(project, "lmprune")
    assert len(done) == 2 and done[0]["overrides"]["lr"] == 3e-3, out.stdout[-3000:]
    pruned = [r for r in done if r["status"] == "pruned"]
    assert [r["overrides"]["lr"] for r in pruned] == [1e-5], out.stdout[-3000:]
    record = pruned[0]
    assert record["epoch"] == 0 and 20 <= record["step"] < min(LM_EPOCH, 200), record["step"]
    assert all(r["status"] == "finished" and r["step"] == 200 for r in done if r not in pruned)
    assert "PRUNE lmprune/" in out.stdout
