"""archive, unarchive (shells exparchive, expunarchive) and import (expimport) on real runs and real git.

What must hold: an archive round-trip is byte-identical for every file archived; a live run is
refused; an import of another clone where both made `big/0` gives two runs that every listing
and table reads, the second renumbered with `imported_from`, and a repeat imports nothing;
`--from` fetches the tags (or, where a tag here marks another commit, the commit) so `rerun -f`
of an imported run reproduces it; a kill -9 mid-import leaves each run whole or absent and the
next import completes the rest; a mistake is one line, exit 2, nothing written.
The runs train 1 epoch on 300 digits (`data=tiny`).
"""
import csv
import io
import json
import os
import signal
import subprocess
import tarfile

import pytest

from conftest import (assert_one_line_mistake, communicate, git, learned, make_project, ok, read_json,
                      user_state, wait_for, Project)
from test_eval import with_tiny_data
from utils import runlock

TINY = ["epochs=1", "data=tiny"]


def clone(origin, dest):
    """Another clone of origin's repository, with its own tiny data and git identity."""
    git(origin.root.parent, "clone", "-q", str(origin.root), str(dest))
    project = Project(dest)
    project.git("config", "user.name", "Other Researcher")
    project.git("config", "user.email", "other@example.com")
    return with_tiny_data(project)


@pytest.fixture(scope="module")
def clones(tmp_path_factory):
    """`a`: big/0, and only/0 on a later commit (tag `only` is a's alone); `b`: a clone made
    before `only`, with its own big/0; `c`: a clone whose own tag `only` marks another commit."""
    base = tmp_path_factory.mktemp("archive")
    a = with_tiny_data(make_project(base / "a"))
    ok(a.cli("run", "-f", "big", *TINY))
    b = clone(a, base / "b")
    c = clone(a, base / "c")
    ok(b.cli("run", "-f", "big", *TINY))
    a.commit("code/NOTES.txt", "only in a\n", "a's own commit")
    ok(a.cli("run", "-f", "only", *TINY))
    c.commit("code/NOTES.txt", "only in c\n", "c's own commit")
    c.git("tag", "-a", "only", "-m", "c's own tag")
    return a, b, c


def tree(folder):
    """{relative path: bytes, ('link', target) or 'folder'} of everything under a folder."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                found[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                found[rel] = "folder"
            else:
                found[rel] = open(path, "rb").read()
    return found


def ids(folder):
    """The run folders of a tag's folder (not its hidden .expls.json)."""
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


def members(path):
    with tarfile.open(path) as tar:
        return [m.name for m in tar.getmembers()]


def test_archive_round_trip_is_byte_identical(clones, tmp_path):
    a, _, _ = clones
    out = ok(a.cli("archive", "big/0", "only", "-o", tmp_path / "runs.tar.gz"))
    assert "2 runs" in out.stdout
    names = members(tmp_path / "runs.tar.gz")
    assert names[0] == "runtag-archive.json" and not any(n.endswith("/lock") for n in names)
    best = os.readlink(a.run_dir("big", 0) / "checkpoint/epoch_best.pth")
    assert {n for n in names if n.endswith(".pth")} >= {f"big/0/checkpoint/{best}", "big/0/checkpoint/epoch_best.pth"}
    assert not any(n.endswith("epoch_last.pth") for n in names)  # best only, by default
    assert names == members(tmp_path / "runs.tar.gz")  # a fixed order

    d = clone(a, tmp_path / "d")
    ok(d.cli("unarchive", tmp_path / "runs.tar.gz"))
    for tag in ("big", "only"):
        source, back = tree(a.run_dir(tag, 0)), tree(d.run_dir(tag, 0))
        archived = {n.split("/", 2)[2] for n in names if n.startswith(f"{tag}/0/")}
        assert set(back) == archived and all(back[rel] == source[rel] for rel in archived)
    assert "big" in ok(d.cli("expls")).stdout and "only" in ok(d.cli("expels", "only")).stdout
    again = ok(d.cli("unarchive", tmp_path / "runs.tar.gz"))  # the same runs: none brought twice
    assert "already here" in again.stdout and ids(d.root / "__result__/big") == ["0"]

    ok(a.cli("archive", "big", "-o", tmp_path / "none.tar.gz", "--checkpoints", "none"))
    assert not any(n.endswith(".pth") for n in members(tmp_path / "none.tar.gz"))
    ok(a.cli("archive", "big", "-o", tmp_path / "all.tar.gz", "--checkpoints", "all"))
    every = {f"big/0/checkpoint/{p}" for p in os.listdir(a.run_dir("big", 0) / "checkpoint")}
    assert {n for n in members(tmp_path / "all.tar.gz") if "/checkpoint/" in n} == every


def test_a_live_run_is_not_archived(clones, tmp_path):
    a, _, _ = clones
    fd = runlock.acquire(a.run_dir("big", 0), "big/0")  # as the run's process holds it
    try:
        assert_one_line_mistake(a.cli("archive", "big", "-o", tmp_path / "x.tar.gz"), "big/0", "running")
    finally:
        runlock.release(a.run_dir("big", 0))
    assert fd and os.listdir(tmp_path) == []  # no file, no temporary


def table_rows(project):
    with open(project.root / "__statistic__/table/record.csv") as f:
        return {row["run"]: row for row in csv.DictReader(f)}


def test_import_of_another_clone_renumbers_and_reads_everywhere(clones):
    a, b, _ = clones
    before = user_state(b)
    out = ok(b.cli("import", a.root, "--from", a.root))
    assert "big/0 of" in out.stdout and "-> big/1" in out.stdout and "fetched tag only" in out.stdout
    assert user_state(b) == before  # refs added, nothing of the user's touched
    mine, theirs = b.record("big", 0), b.record("big", 1)
    assert theirs["id"] == 1 and theirs["imported_from"] == {"name": "big/0", "host": a.record("big", 0)["host"],
                                                             "root": str(a.root)}
    assert {k: v for k, v in theirs.items() if k != "imported_from"} == {**a.record("big", 0), "id": 1}
    assert "imported_from" not in mine
    listed = ok(b.cli("expels", "big")).stdout
    assert "big/0" in listed and "big/1" in listed and "damaged" not in listed + ok(b.cli("expels", "big")).stderr
    ok(b.cli("record", "big")), ok(b.cli("title")), ok(b.cli("table"))
    rows = table_rows(b)
    assert set(rows) == {"big/0", "big/1"}
    for id, record in ((0, mine), (1, theirs)):
        assert float(rows[f"big/{id}"]["best/val_acc"]) == pytest.approx(record["metrics"]["best/val_acc"])

    again = ok(b.cli("import", a.root))  # nothing twice
    assert "imported 0 runs, 2 already here" in again.stdout
    assert ids(b.root / "__result__/big") == ["0", "1"]

    assert b.git("rev-parse", "only^{commit}") == a.record("only", 0)["commit"]  # the tag fetched
    ok(b.cli("rerun", "-f", "only/0"))  # its commit checked out, its seed: the same numbers
    assert learned(b.record("only", 1)) == learned(b.record("only", 0))


def test_a_tag_here_on_another_commit_is_left_and_the_commit_fetched(clones):
    a, _, c = clones
    own = c.git("rev-parse", "only^{commit}")
    without = ok(c.cli("import", a.root))
    theirs = a.record("only", 0)["commit"]
    assert f"commits not in this repository: {theirs[:10]} (tag only)" in without.stderr
    out = ok(c.cli("import", a.root, "--from", a.root))  # the runs are here: only the commit comes
    assert "already here" in out.stdout and "refs/runtag/imported/" in out.stdout
    assert c.git("rev-parse", "only^{commit}") == own  # never moved
    c.git("cat-file", "-e", f"{theirs}^{{commit}}")
    assert c.record("only", 0)["commit"] == theirs
    again = ok(c.cli("rerun", "-f", "only/0"))  # the commit it ran, not the one the tag marks here
    assert f"reruns only/0 at {theirs[:10]}" in again.stdout, again.stdout


def many(a, root, n):
    """A clone's __result__ of n runs many/0 ... (copies of a's big/0, each with a 4 MB file)."""
    for i in range(n):
        dest = root / f"__result__/many/{i}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(a.run_dir("big", 0)), str(dest)], check=True)
        record = json.loads((dest / "statistic.json").read_text())
        (dest / "statistic.json").write_text(json.dumps({**record, "tag": "many", "id": i, "start": f"t{i}"}))
        (dest / "weights.bin").write_bytes(os.urandom(4 << 20))
        (dest / "lock").unlink(missing_ok=True)
    return root


def test_kill_during_import_leaves_runs_whole_or_absent(clones, tmp_path):
    a, _, _ = clones
    source = many(a, tmp_path / "other", 12)
    d = clone(a, tmp_path / "d")
    proc = d.start("import", source)
    dest = d.root / "__result__/many"
    wait_for(lambda: dest.is_dir() and os.listdir(dest) or proc.poll() is not None, what="a first imported run")
    proc.send_signal(signal.SIGKILL)
    communicate(proc)

    def whole_or_absent():
        for i in range(12):
            if not (dest / str(i)).exists():
                continue
            got, want = tree(dest / str(i)), tree(source / f"__result__/many/{i}")
            want.pop("lock", None)
            record = json.loads(got.pop("statistic.json"))
            assert set(got) == set(want) - {"statistic.json"} and all(got[k] == want[k] for k in got)
            assert record["imported_from"]["name"] == f"many/{i}" and record["id"] == i
        return len(ids(dest)) if dest.is_dir() else 0

    placed = whole_or_absent()
    assert placed < 12 or proc.returncode == 0  # mostly: killed part-way
    shown = ok(d.cli("expls"))
    assert ".import" not in shown.stdout + shown.stderr  # a killed import's folder is no tag
    out = ok(d.cli("import", source))
    assert f"imported {12 - placed} run" in out.stdout
    assert whole_or_absent() == 12 and os.listdir(d.root / "__result__/.import-tmp") == []


def archive_of(path, *entries):
    """A .tar.gz with a manifest and the given (name, bytes) members."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("runtag-archive.json", b"{}"), *entries):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_mistakes_are_one_line_and_write_nothing(clones, tmp_path):
    a, _, c = clones
    before = tree(c.root / "__result__")
    (tmp_path / "text.tar.gz").write_text("not an archive\n")
    evil = archive_of(tmp_path / "evil.tar.gz", ("big/0/statistic.json", b"{}"), ("../../evil", b"x"))
    absolute = archive_of(tmp_path / "abs.tar.gz", ("/tmp/evil", b"x"))
    for verb in ("unarchive", "import"):
        assert_one_line_mistake(c.cli(verb, tmp_path / "missing.tar.gz"), "missing.tar.gz")
        assert_one_line_mistake(c.cli(verb, tmp_path / "text.tar.gz"), "not a .tar.gz")
        assert_one_line_mistake(c.cli(verb, evil), "../../evil")
        assert_one_line_mistake(c.cli(verb, absolute), "/tmp/evil")
    assert_one_line_mistake(c.cli("import", tmp_path), "holds no runs")
    assert_one_line_mistake(c.cli("import", a.root, "--from", tmp_path), "not a git repository")
    assert_one_line_mistake(c.cli("archive", "nosuch", "-o", tmp_path / "x.tar.gz"), "nosuch")
    assert_one_line_mistake(c.cli("archive", "only", "-o", tmp_path / "no/x.tar.gz"), "does not exist")
    assert tree(c.root / "__result__") == before and not (tmp_path / "evil").exists()
    assert not os.path.exists("/tmp/evil") and not (tmp_path / "x.tar.gz").exists()
