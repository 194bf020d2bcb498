"""eval (shell expeval) on real runs: finished runs scored again, their records amended.

What must hold: the metrics land as eval/<name>/<split>/<metric> with their provenance in
`evals`, and nothing else of the record changes (status, training metrics, byte for byte); a
live run, an unknown checkpoint, a training key, a repeated name are one line, exit 2, nothing
written; a kill -9 in the middle leaves every record whole; HEAD's evaluation code counts,
--at-run the run's own; --workers scores the runs of a 4-run sweep at once. The runs train 1 epoch on 300 digits
(`data=tiny`, a folder under __data__/), and are scored on the whole bundled digits set.
"""
import json
import os
import signal
import subprocess

import numpy as np
import pytest
from sklearn.datasets import load_digits

from conftest import (PYTHON, assert_one_line_mistake, communicate, make_project, ok, read_json, record_at,
                      user_state, wait_for)
from utils import runlock

TINY = ["epochs=1", "data=tiny"]
SWEEP = "default:\n  epochs: 1\n  data: tiny\n---\nlr: [1.0e-3, 2.0e-3, 3.0e-3, 4.0e-3]\n"  # tiny/0 ... tiny/3

# Two evaluations of the test project's own (committed in `trained`), each leaving a mark per
# process in $EVAL_MARKS: `slow` hangs from the second run on (for a kill in the middle), `paired`
# returns only once two processes have marked (proof that two ran at once).
FUNCTIONS = '''

import os as _os
import time as _time
from pathlib import Path as _Path


def _mark():
    marks = _Path(_os.environ["EVAL_MARKS"])
    marks.mkdir(exist_ok=True)
    (marks / str(_os.getpid())).touch()
    return marks


def slow(model, loader, args):
    if len(list(_mark().iterdir())) >= 2:
        _time.sleep(3600)
    return epoch.evaluate(model, loader, args)


def broken(model, loader, args):
    raise ValueError("a bug in the metric")


def paired(model, loader, args):
    marks = _mark()
    while len(list(marks.iterdir())) < 2:
        _time.sleep(0.05)
    return epoch.evaluate(model, loader, args)
'''


def with_tiny_data(project):
    digits = load_digits()
    (project.root / "__data__/tiny").mkdir(parents=True)
    np.savez(project.root / "__data__/tiny/data.npz", x=digits.images[:300] / 16.0, y=digits.target[:300])
    return project


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Four finished runs tiny/0..3 of one sweep, and the functions above committed after them."""
    project = with_tiny_data(make_project(tmp_path_factory.mktemp("eval") / "project"))
    project.commit("code/sweeps/tiny.yaml", SWEEP, "a 4-run sweep for the tests")
    ok(project.cli("sweep", "-f", "tiny", "code/sweeps/tiny.yaml", "--workers", "2"))
    evaluate = project.root / "code/evaluate.py"
    project.commit("code/evaluate.py", evaluate.read_text() + FUNCTIONS, "evaluations for the tests")
    return project


def raw(project, tag, id):
    return (project.run_dir(tag, id) / "statistic.json").read_bytes()


def without(record, name, split="test"):
    """The record as it was before an eval `name` added itself."""
    rest = {k: v for k, v in record.items() if k != "evals"}
    rest["metrics"] = {k: v for k, v in record["metrics"].items() if not k.startswith(f"eval/{name}/{split}/")}
    evals = [e for e in record.get("evals", []) if (e["name"], e["split"]) != (name, split)]
    return {**rest, **({"evals": evals} if evals else {})}


def test_eval_of_three_runs_on_another_data_set(trained):
    before = {i: raw(trained, "tiny", i) for i in range(3)}
    head = trained.git("rev-parse", "HEAD")
    out = ok(trained.cli("eval", "tiny/0", "tiny/1", "tiny/2", "data=digits"))
    for i in range(3):
        old, new = json.loads(before[i]), trained.record("tiny", i)
        assert without(new, "digits") == old  # nothing else changed ...
        assert json.dumps(new["status"]) == json.dumps(old["status"]) == '"finished"'
        trainedm = {k: v for k, v in new["metrics"].items() if not k.startswith("eval/")}
        assert json.dumps(trainedm) == json.dumps(old["metrics"])  # ... byte for byte
        added = {k: v for k, v in new["metrics"].items() if k.startswith("eval/")}
        assert sorted(added) == ["eval/digits/test/acc", "eval/digits/test/loss"], added
        assert 0 <= added["eval/digits/test/acc"] <= 1
        assert added["eval/digits/test/acc"] != old["metrics"]["test/acc"]  # another test set: 270 digits, not 45
        [entry] = new["evals"]
        assert entry["name"] == "digits" and entry["split"] == "test" and entry["overrides"] == {"data": "digits"}
        assert entry["commit"] == head and entry["checkpoint"] == "epoch_1.pth" and entry["fn"] == "epoch.evaluate"
        assert entry["time"] and entry["host"] and entry["duration_s"] > 0
        assert f"tiny/{i} eval/digits/test:" in out.stdout
    # the tables read `metrics`: the new columns are there
    ok(trained.cli("record", "-l", "scored", "tiny/0", "tiny/1", "tiny/2"))
    ok(trained.cli("title", "scored"))
    ok(trained.cli("table", "scored"))
    header = (trained.root / "__statistic__/table/scored.csv").read_text().splitlines()[0]
    assert "eval/digits/test/acc" in header, header
    assert "eval/digits/test/acc" in ok(trained.cli("diff", "tiny/0", "tiny/1")).stdout
    loaded = subprocess.run([PYTHON, "-c", "import sys; sys.path.insert(0, 'code'); from utils.statistic import "
                             "load_table; print(list(load_table('scored').columns))"],
                            cwd=trained.root, capture_output=True, text=True, env=trained.env())
    assert "eval/digits/test/acc" in loaded.stdout, loaded.stderr


def test_mistakes_are_one_line_and_write_nothing(trained):
    ok(trained.cli("eval", "tiny/3", "--name", "again"))
    before = {i: raw(trained, "tiny", i) for i in range(4)}
    for argv, words in [(["tiny", "--checkpoint", "epoch_9"], ["no checkpoint epoch_9.pth"]),
                        (["tiny", "--checkpoint", "newest"], ["unknown checkpoint"]),
                        (["tiny", "lr=0.1"], ["lr is not a key eval may change"]),
                        (["tiny", "epochs=3"], ["epochs"]),
                        (["tiny/3", "--name", "again"], ["tiny/3", "again", "already", "--force"]),
                        (["tiny", "--name", "again"], ["tiny/3", "already"]),  # one run has it: none is scored
                        (["tiny", "split=holdout"], ["split"]),
                        (["tiny/9"], ["unknown run"])]:
        assert_one_line_mistake(trained.cli("eval", *argv), *words)
        assert {i: raw(trained, "tiny", i) for i in range(4)} == before, argv
    first = trained.record("tiny", 3)["evals"]
    ok(trained.cli("eval", "tiny/3", "--name", "again", "--force"))
    again = trained.record("tiny", 3)
    assert [e["name"] for e in again["evals"]] == ["again"] and again["evals"][0]["time"] >= first[0]["time"]
    assert without(again, "again") == without(json.loads(before[3]), "again")


def test_a_failing_evaluation_shows_its_error_and_writes_nothing(trained):
    before = raw(trained, "tiny", 0)
    out = trained.cli("eval", "tiny/0", "--fn", "broken")
    assert out.returncode == 1, out.stderr
    assert "ValueError: a bug in the metric" in out.stderr and "Traceback" in out.stderr
    assert out.stderr.splitlines()[-1].startswith("runtag: the eval of tiny/0 failed (exit 1)")
    assert raw(trained, "tiny", 0) == before


def test_a_running_run_is_refused_and_scored_once_it_ended(trained):
    live = trained.start("run", "live", "epochs=300", "data=tiny")
    try:
        record_at(trained, "live", 0, epoch=1)
        out = trained.cli("eval", "live/0", "data=digits")
        assert_one_line_mistake(out, "live/0", "running")
        record = trained.record("live", 0)
        assert "evals" not in record and not any(k.startswith("eval/") for k in record["metrics"])
    finally:
        live.send_signal(signal.SIGINT)
        communicate(live)
    assert trained.record("live", 0)["status"] == "interrupted"
    ok(trained.cli("eval", "live/0", "--checkpoint", "last"))
    assert "eval/default/test/acc" in trained.record("live", 0)["metrics"]


def test_a_kill_in_the_middle_leaves_every_record_whole(trained, tmp_path):
    before = {i: raw(trained, "tiny", i) for i in range(3)}
    marks = tmp_path / "marks"
    proc = trained.start("eval", "tiny/0", "tiny/1", "tiny/2", "--fn", "slow", EVAL_MARKS=str(marks))
    try:
        wait_for(lambda: marks.is_dir() and len(list(marks.iterdir())) >= 2, what="the second run's eval")
    finally:
        proc.kill()  # SIGKILL: no clean-up of ours runs
        communicate(proc)
    hanging = [int(p.name) for p in marks.iterdir()]
    wait_for(lambda: all(not os.path.exists(f"/proc/{pid}") or
                         open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z" for pid in hanging),
             what="the scoring process to die with its command")
    first = read_json(trained.run_dir("tiny", 0) / "statistic.json")
    assert "eval/slow/test/acc" in first["metrics"] and without(first, "slow") == json.loads(before[0])
    for i in (1, 2):
        assert raw(trained, "tiny", i) == before[i]  # whole, and unchanged
    for i in range(3):
        assert not runlock.locked(trained.run_dir("tiny", i))


def test_workers_score_a_sweeps_runs_at_once(trained, tmp_path):
    marks = tmp_path / "marks"
    out = ok(trained.cli("eval", "tiny", "--fn", "paired", "--workers", "2", env={"EVAL_MARKS": str(marks)}))
    assert len(list(marks.iterdir())) == 4  # a process per run; `paired` returned only once two ran at once
    for i in range(4):
        assert "eval/paired/test/acc" in trained.record("tiny", i)["metrics"]
        assert f"tiny/{i} eval/paired/test:" in out.stdout


def test_at_run_scores_with_the_runs_code_and_head_with_the_new(project):
    with_tiny_data(project)
    ok(project.cli("run", "-f", "old", *TINY))
    epoch_py = project.root / "code/epoch.py"
    code = epoch_py.read_text()
    old_line = '    return {"loss": loss.detach(), "acc": (out.argmax(-1) == y).double().mean()}'
    assert old_line in code
    new_line = ('    right = (out.argmax(-1) == y).double()\n'
                '    return {"loss": loss.detach(), "acc": 100 * right.mean(), "err": 1 - right.mean()}')
    project.commit("code/epoch.py", code.replace(old_line, new_line), "accuracy in percent, and the error rate")
    before = user_state(project)
    ok(project.cli("eval", "old", "--at-run", "--name", "then"))
    ok(project.cli("eval", "old", "--name", "now"))
    assert user_state(project) == before  # the run's commit was checked out elsewhere
    record = project.record("old", 0)
    metrics = record["metrics"]
    assert metrics["eval/then/test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-9)  # the run's own test again
    assert "eval/then/test/err" not in metrics
    assert metrics["eval/now/test/acc"] == pytest.approx(100 * metrics["test/acc"])
    assert metrics["eval/now/test/err"] == pytest.approx(1 - metrics["test/acc"])
    commits = {e["name"]: (e["commit"], e["at_run"]) for e in record["evals"]}
    assert commits == {"then": (record["commit"], True), "now": (project.git("rev-parse", "HEAD"), False)}
