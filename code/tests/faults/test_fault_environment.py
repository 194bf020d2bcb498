"""Issue 23, item 8 (and 13): what the environment refuses is one line `runtag: ...`, exit 2, no
traceback, nothing half-done. A full `__statistic__` (a 64 KiB tmpfs the test fills), a read-only
run or tag folder (a read-only bind mount: chmod does not stop root), a file that is not UTF-8,
a config.py that does not parse, `--nproc` below 1; and `record` of folders without a record.
"""
import json
import os
import subprocess
from contextlib import contextmanager

import pytest

from conftest import assert_one_line_mistake, need, read_json
from faultlib import untouched

RUN = ["epochs=1"]


def mount(*args):
    done = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)
    need("permission to mount (root)", done.returncode == 0)


@contextmanager
def full(folder):
    """`folder` on a 64 KiB tmpfs, filled: every write into it meets ENOSPC."""
    folder.mkdir(exist_ok=True)
    mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", folder)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder):
    try:
        with open(folder / "filler", "wb", buffering=0) as f:
            while True:
                f.write(bytes(4096))
    except OSError:  # ENOSPC: full
        pass


@contextmanager
def read_only(folder):
    """`folder` bind-mounted on itself, read-only."""
    mount("--bind", folder, folder)
    try:
        mount("-o", "remount,bind,ro", folder)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def no_traceback(out):
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return out


def fake_run(p, tag, id, status="finished", end="2026-01-01T00:00:00+00:00"):
    folder = p.run_dir(tag, id)
    folder.mkdir(parents=True)
    (folder / "statistic.json").write_text(json.dumps({
        "version": 1, "tag": tag, "id": id, "status": status, "commit": p.git("rev-parse", "HEAD"),
        "command": f"run {tag}", "seed": 1, "fixed_seed": False, "overrides": {"epochs": 2},
        "hparams": {"best_metric": "val/acc"}, "metrics": {"best/val_acc": 0.5, "best/epoch": 2}, "epoch": 2,
        "epochs": 2, "start": end, "end": end, "duration_s": 1.0, "host": "elsewhere", "pid": 1,
        "world_size": 1, "parent": None}))


# ---- a full __statistic__ --------------------------------------------------------------------

@pytest.mark.slow
def test_a_full_statistic_folder_is_one_line_in_every_command(project):
    """Each command that writes under __statistic__ says so in one line (exit 2); `run` and
    `rerun` finish their run and say in one line that finished.txt could not be written and how
    to add it (exit 0: the run is finished); those that only read go on."""
    sweep = "code/sweeps/one.yaml"
    project.commit(sweep, "default:\n  epochs: 1\n---\nlr: [0.001]\n", "a sweep of one run")
    with full(project.root / "__statistic__") as statistic:
        (statistic / "exper-list").mkdir()
        (statistic / "exper-list/mine.txt").write_text("dsk/0\n")  # for title and table
        fill(statistic)
        with untouched(project):
            out = no_traceback(project.cli("run", "-f", "dsk", *RUN))
            assert out.returncode == 0, out.stderr
            said = [line for line in out.stderr.splitlines() if line.startswith("runtag: dsk/0")]
            assert len(said) == 1 and "finished.txt could not be written (no space left on device)" in said[0]
            assert "`record -l finished dsk/0`" in said[0]
            assert project.record("dsk", 0)["status"] == "finished"
            out = no_traceback(project.cli("rerun", "dsk/0"))
            assert out.returncode == 0 and "`record -l finished dsk/1`" in out.stderr
            for argv in (["record", "dsk/0"], ["record", "-l", "x", "dsk"], ["record"], ["title", "mine"],
                         ["table", "mine"], ["plot", "dsk/0"], ["itb", "dsk"]):
                assert_one_line_mistake(project.cli(*argv), "no space left on device while writing", "__statistic__")
            assert_one_line_mistake(project.cli("sweep", "sw", sweep), "no space left on device")  # its lock names no file
            for argv in (["expls"], ["expels", "dsk"], ["diff", "dsk/0", "dsk/1"], ["sweep", "sw", sweep, "--dry-run"]):
                out = no_traceback(project.cli(*argv))
                assert out.returncode == 0, (argv, out.stderr)
            assert_one_line_mistake(project.cli("con", "dsk"), "finished")
        assert not list(statistic.rglob(".*.tmp")) and not list(statistic.rglob("*.png"))  # nothing half-written
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(project.root) not in ps  # no TensorBoard left behind by the `itb` that failed


# ---- a read-only run folder, tag folder, __result__ ------------------------------------------

def interrupted(project, tag, epochs=2):
    """A finished one-epoch run turned into one `con` can take on to `epochs`."""
    path = project.run_dir(tag, 0) / "statistic.json"
    record = json.loads(path.read_text())
    record.update(status="interrupted", epochs=epochs, overrides={"epochs": epochs})
    path.write_text(json.dumps(record))
    return record


@pytest.mark.slow
def test_a_read_only_folder_refuses_con_rerun_and_run_before_anything(project):
    assert project.cli("run", "-f", "ro", *RUN).returncode == 0
    before = interrupted(project, "ro")
    run_dir, tags = project.run_dir("ro", 0), project.git("tag", "--list")
    leftover = run_dir / ".statistic.json.k1ll3d.tmp"  # a record write killed mid-way (item 13)
    leftover.write_text('{"half')
    with untouched(project):
        with read_only(run_dir):
            assert_one_line_mistake(project.cli("con", "ro"), "read-only file system", str(run_dir))
        assert read_json(run_dir / "statistic.json") == before and not (run_dir / "log").read_text().count("continuing")
        with read_only(run_dir.parent):
            assert_one_line_mistake(project.cli("rerun", "ro"), "read-only file system")
            assert_one_line_mistake(project.cli("run", "ro", *RUN), "read-only file system")  # the tag marks HEAD: reused
        assert sorted(os.listdir(run_dir.parent)) == ["0"]
        with read_only(project.root / "__result__"):
            assert_one_line_mistake(project.cli("run", "fresh", *RUN), "read-only file system")
        assert project.git("tag", "--list") == tags  # the tag `fresh` was taken back, `ro` kept
        assert sorted(os.listdir(project.root / "__result__")) == ["ro"]
        assert project.cli("con", "ro").returncode == 0  # writable again: con goes on
    assert project.record("ro", 0)["status"] == "finished" and not leftover.exists()


# ---- files that are not UTF-8, a config.py that does not parse, --nproc < 1 -----------------

def test_a_list_title_or_sweep_file_that_is_not_utf8_is_one_line_naming_it(project):
    fake_run(project, "s", 0)
    lists = project.root / "__statistic__/exper-list"
    lists.mkdir(parents=True)
    (lists / "bad.txt").write_bytes(b"s/0\n\xff\xfe\n")
    for argv in (["title", "bad"], ["table", "bad"], ["record", "-l", "bad", "s/0"]):
        assert_one_line_mistake(project.cli(*argv), "bad.txt is not UTF-8")
    (lists / "good.txt").write_text("s/0\n")
    (project.root / "__statistic__/title").mkdir()
    (project.root / "__statistic__/title/good.json").write_bytes(b'{"hparams": ["\xe9"]}')
    for argv in (["title", "good"], ["table", "good"]):
        assert_one_line_mistake(project.cli(*argv), "good.json is not UTF-8")
    (project.root / "bad.yaml").write_bytes(b"lr: [0.1]\noptimizer: [\xff]\n")
    assert_one_line_mistake(project.cli("sweep", "sw", "bad.yaml", "--dry-run"), "bad.yaml is not UTF-8")


@pytest.mark.parametrize("text, words", [
    ("lr = (\n", ["config.py line", "never closed"]),
    ("lr = nosuch\n", ["config.py line", "NameError"]),
    ("x = '\xe9'\n".encode("latin-1"), ["config.py line", "utf-8"]),
])
def test_a_config_py_that_does_not_load_is_one_line_naming_file_and_line(project, text, words):
    config = project.root / "code/config.py"
    with open(config, "ab") as f:
        f.write(text if isinstance(text, bytes) else text.encode())
    line = len(config.read_bytes().splitlines())
    head = project.git("rev-parse", "HEAD")
    assert_one_line_mistake(project.cli("sweep", "sw", "code/sweeps/lr.yaml", "--dry-run"), *words, f"line {line}")
    assert_one_line_mistake(project.cli("run", "-m", "try", "t", *RUN), *words)  # before the commit -m would make
    assert project.git("rev-parse", "HEAD") == head and project.git("tag", "--list") == ""
    assert not (project.root / "__result__").exists()


@pytest.mark.parametrize("value", ["-1", "0", "two"])
def test_nproc_below_one_is_refused_before_anything(project, value):
    fake_run(project, "s", 0, status="interrupted")
    with untouched(project):
        for argv in (["run", "--nproc", value, "t", *RUN], ["rerun", "--nproc", value, "s"],
                     ["continue", "--nproc", value, "s"], ["run", "--nnodes", value, "t"]):
            assert_one_line_mistake(project.cli(*argv), "a whole number >= 1")
    assert project.git("tag", "--list") == "" and os.listdir(project.root / "__result__") == ["s"]
    assert os.listdir(project.run_dir("s", 0)) == ["statistic.json"]


# ---- record: folders that are no run, and no argument ---------------------------------------

def test_record_refuses_a_named_folder_without_a_record_and_skips_it_in_a_tag(project):
    fake_run(project, "s", 0)
    (project.root / "__result__/s/1").mkdir()       # a run folder whose record was never written
    os.symlink("2", project.root / "__result__/s/2")  # a symlink loop
    assert_one_line_mistake(project.cli("record", "s/1"), "s/1 is no run to record")
    assert_one_line_mistake(project.cli("record", "s/2"), "s/2")
    out = project.cli("record", "s")
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert "skipped s/1" in out.stderr and len(out.stderr.splitlines()) == 2, out.stderr
    assert (project.root / "__statistic__/exper-list/record.txt").read_text() == "s/0\n"


def test_record_alone_records_the_newest_finished_run(project):
    assert_one_line_mistake(project.cli("record"), "no finished run")
    fake_run(project, "a", 0, end="2026-01-01T10:00:00+00:00")
    fake_run(project, "b", 0, end="2026-01-02T10:00:00+00:00")
    fake_run(project, "b", 1, status="interrupted", end="2026-01-03T10:00:00+00:00")
    fake_run(project, "c", 0, end="2025-12-31T10:00:00+00:00")
    out = project.cli("record")
    assert out.returncode == 0 and "b/0 (the newest finished run)" in out.stdout, out.stdout + out.stderr
    assert (project.root / "__statistic__/exper-list/record.txt").read_text() == "b/0\n"
