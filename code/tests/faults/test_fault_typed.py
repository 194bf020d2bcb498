"""Issue 23, item 5: a record that parses but holds wrong types is damaged everywhere.

By hand through the real CLI: `"metrics": []`, `"overrides": "epochs=2"`, `"seed": "abc"`, a
JSON list, ... are listed `damaged` by expels (the field named), counted and warned about once by
expls, skipped by record and table, and refused in one line by con, rerun and run --from before
anything is made (no run folder, no tag); fixed, the run lists again. Then generated records
(hypothesis): a random JSON value in each field of a valid record, through expels, expls, con,
rerun, record and table in-process: exit 0, or exit 2 with one line; never another exception.
"""
import contextlib
import io
import json
import os
import socket
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_one_line_mistake, ok

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # code/: the template's modules

from utils import cli, paths, runlock, schema  # noqa: E402


def valid(tag, id, status="finished", commit="0" * 40):
    """A record as `run` writes it (DESIGN.md's schema)."""
    return {"version": 1, "tag": tag, "id": id, "status": status, "commit": commit, "command": f"run {tag}",
            "seed": 7, "fixed_seed": False, "overrides": {"epochs": 2}, "hparams": {"best_metric": "val/acc", "epochs": 2},
            "metrics": {"best/val_acc": 0.5, "best/epoch": 2}, "epoch": 1, "epochs": 2, "step": 10, "max_steps": None,
            "start": "2026-01-01T00:00:00+00:00", "end": None, "duration_s": 1.5, "host": socket.gethostname(),
            "gpus": None, "pid": None, "world_size": 1, "nnodes": 1, "parent": None, "versions": {"python": "3"}}


def write(p, tag, id, record):
    folder = p.run_dir(tag, id)
    folder.mkdir(parents=True, exist_ok=True)
    text = record if isinstance(record, str) else json.dumps(record)
    (folder / "statistic.json").write_text(text)
    return folder / "statistic.json"


def state(p):
    """What a refused command must leave as it was: every path under __result__ and __statistic__, the tags."""
    found = sorted(str(f.relative_to(p.root)) for d in ("__result__", "__statistic__") if (p.root / d).exists()
                   for f in (p.root / d).rglob("*"))
    return found, p.git("tag", "--list")


BAD = [  # (what the field holds, the words the warning and the refusal name)
    ({"metrics": []}, "metrics is array, not object"),
    ({"overrides": "epochs=2"}, "overrides is string, not object"),
    ({"seed": "abc"}, "seed is string, not integer"),
    ({"id": "1"}, "id is string, not integer"),
    ({"epochs": True}, "epochs is boolean, not integer or null"),
    ({"hparams": None}, "hparams is null, not object"),
    ({"commit": "HEAD~1"}, "commit is 'HEAD~1'"),
    ({"pid": -1}, "pid is -1"),
    ("list", "it is array, not object"),
]


@pytest.mark.parametrize("change, words", BAD, ids=[w.split(",")[0] for _, w in BAD])
def test_a_typed_wrong_record_is_damaged_everywhere_and_refused_before_anything_is_made(project, change, words):
    p = project
    head = p.git("rev-parse", "HEAD")
    write(p, "t", 0, valid("t", 0, commit=head))
    bad = [valid("t", 1, status="interrupted", commit=head)] if change == "list" else \
        {**valid("t", 1, status="interrupted", commit=head), **change}
    path = write(p, "t", 1, bad)
    shown = str(paths.resolved(str(p.root / "__result__")) / "t/1/statistic.json")

    out = ok(p.cli("expels", "t"))
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert "damaged" in rows["t/1"] and words in rows["t/1"] and "finished" in rows["t/0"], out.stdout
    warning = out.stderr.splitlines()
    assert len(warning) == 1 and warning[0].startswith(f"runtag: warning: {shown} is damaged: {words}"), out.stderr
    assert " — " in warning[0]
    out = ok(p.cli("expls"))
    assert out.stdout.splitlines()[1].split()[:3] == ["t", "2", "1"], out.stdout
    assert len(out.stderr.splitlines()) == 1 and words in out.stderr, out.stderr

    before = state(p)
    for argv in (["con", "t/1"], ["rerun", "t/1"], ["run", "--from", "t/1", "fresh"]):
        assert_one_line_mistake(p.cli(*argv), "t/1", words)
        assert state(p) == before, argv
    ok(p.cli("record", "t/0"))
    table = ok(p.cli("table"))
    assert "t/0" in table.stdout and "t/1" not in table.stdout

    path.write_text(json.dumps(valid("t", 1, status="interrupted", commit=head)))  # fixed by hand
    out = ok(p.cli("expels", "t"))
    assert "damaged" not in out.stdout and out.stderr == "", out.stdout + out.stderr


def test_a_record_in_another_runs_folder_is_damaged(project):
    """A statistic.json copied from t/0 into t/1: con would continue t/0's run from t/1's folder."""
    write(project, "t", 0, valid("t", 0, status="interrupted"))
    write(project, "t", 1, valid("t", 0, status="interrupted"))
    out = ok(project.cli("expels", "t"))
    assert "not its folder's t/1" in out.stdout and len(out.stderr.splitlines()) == 1
    assert_one_line_mistake(project.cli("con", "t/1"), "t/1", "not its folder's t/1")


def test_a_run_whose_record_has_no_commit_is_refused_in_one_line(project):
    """main.py by hand outside git records `commit: null`: valid, but nothing to continue or rerun."""
    write(project, "t", 0, valid("t", 0, status="interrupted", commit=None))
    assert_one_line_mistake(project.cli("rerun", "t/0"), "t/0 records no commit")
    assert_one_line_mistake(project.cli("con", "t/0"), "t/0 records no commit")


# ---- generated records -------------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)
FIELD = st.sampled_from(sorted(valid("t", 0)) + ["init_from", "threads", "slurm_job_id", "requeues", "evals"])
VERBS = [["expels", "t"], ["expls"], ["con", "t/1"], ["rerun", "t/1"], ["con", "t"], ["rerun", "t"],
         ["record", "t"], ["table"], ["diff", "t/0", "t/1"]]


def in_process(argv):
    """cli.main(argv) as one command: its exit status and stderr; any exception but a UserError
    (cli.main turns that into exit 2) escapes and fails the test. Locks a `con` took are let go."""
    paths.SAID.clear()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(argv)
    for fd in runlock.HELD.values():
        os.close(fd)
    runlock.HELD.clear()
    return rc, err.getvalue()


@pytest.fixture(scope="module")
def lab(shared_project):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNTAG_ROOT", str(shared_project.root))
        mp.setenv("CI", "true")
        mp.chdir(shared_project.root)
        write(shared_project, "t", 0, valid("t", 0))
        yield shared_project


HOW = st.sampled_from(["set", "set", "set", "drop", "metrics", "overrides", "hparams", "whole"])


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=FIELD, value=JSON, how=HOW, status=st.sampled_from(["interrupted", "running", "finished", "failed"]))
def test_generated_records_are_used_or_refused_never_a_traceback(lab, field, value, how, status):
    """A random JSON value in one field (or inside metrics, overrides or hparams, or as the whole
    record; or the field left out), then every verb that reads records. Its commit is none of
    this repository's: nothing may train."""
    record = valid("t", 1, status=status)
    if how == "whole":
        record = value
    elif how == "drop":
        record.pop(field, None)
    elif how == "set":
        record[field] = value
    else:
        record[how] = {**record[how], field: value}
    write(lab, "t", 1, json.dumps(record))
    tags = state(lab)[1]
    for argv in VERBS:
        rc, err = in_process(argv)
        said = [line for line in err.splitlines() if not line.startswith("runtag: warning: ")]
        assert rc == 0 or rc == 2 and len(said) == 1 and said[0].startswith("runtag: "), (argv, record, rc, err)
        assert not lab.run_dir("t", 2).exists() and state(lab)[1] == tags, (argv, record)  # nothing ran
    rc, err = in_process(["expels", "t"])
    assert (schema.problem(record, "t/1") is None) == ("t/1" not in err), (record, err)
