"""Issue 26, listings that read little: what a listing verb imports before it lists (each a real
`cli.py` process under `python -X importtime`), and the summary expls keeps of each tag's records
(utils/summary.py): read while a record is unchanged, never stale, its warnings the same as a full
read's, and no error where it cannot be written.
"""
import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import need

CLI = Path(__file__).resolve().parents[1] / "utils" / "cli.py"

# Nothing a listing needs: the training stack, submitit, and the standard modules that only
# creating a run (socket, secrets and its hashlib), a dataclass (inspect) or a date string need.
HEAVY = {"torch", "numpy", "pandas", "git", "tqdm", "tensorboard", "submitit", "psutil", "yaml", "optuna",
         "socket", "secrets", "hashlib", "dataclasses", "inspect", "datetime", "ctypes"}
TOOLS = {"utils.submit", "utils.process", "utils.checkpointing", "utils.launch", "utils.gitrepo", "utils.statistic.table"}
NOT_FOR = {
    "expls": HEAVY | TOOLS | {"utils.checkpoints", "utils.atomic", "tempfile", "random", "shutil", "lzma",
              "subprocess", "threading", "contextlib"},
    "expels": HEAVY | TOOLS | {"tempfile", "shutil", "lzma", "subprocess", "utils.atomic", "contextlib"},  # a Slurm run's listing asks squeue
    "record": HEAVY | TOOLS | {"utils.checkpoints", "tempfile", "shutil", "lzma", "subprocess", "contextlib"},
}
ARGV = {"expls": ["expls"], "expels": ["expels", "t"], "record": ["record", "-l", "mine", "t"]}


def record(tag, id, status="finished", **fields):
    return {"version": 1, "tag": tag, "id": id, "status": status, "commit": "ab" * 20, "command": f"run {tag}",
            "seed": 7, "fixed_seed": False, "overrides": {"lr": 0.1}, "hparams": {"best_metric": "val/acc"},
            "metrics": {"best/val_acc": 0.5, "best/epoch": 2}, "epoch": 2, "epochs": 2, "duration_s": 1.5,
            "host": socket.gethostname(), "pid": None, **fields}


def write(root, tag, id, value):
    folder = root / "__result__" / tag / str(id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "statistic.json"
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def cli(root, *args, importtime=False):
    env = {**os.environ, "RUNTAG_ROOT": str(root), "CI": "1"}
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), str(CLI), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=root)


def listed(root):
    """expls' rows as {tag: (runs, finished)}, and its stderr."""
    out = cli(root, "expls")
    assert out.returncode == 0, out.stderr
    return {line.split()[0]: tuple(map(int, line.split()[1:3])) for line in out.stdout.splitlines()[1:]}, out.stderr


@pytest.mark.parametrize("verb", sorted(NOT_FOR))
def test_a_listing_verb_imports_only_what_it_lists_with(tmp_path, verb):
    write(tmp_path, "t", 0, record("t", 0))
    write(tmp_path, "t", 1, record("t", 1, status="running"))  # expels asks whether it is alive
    out = cli(tmp_path, *ARGV[verb], importtime=True)
    assert out.returncode == 0, out.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "utils.runs" in imported  # the check sees the modules
    assert not imported & NOT_FOR[verb], sorted(imported & NOT_FOR[verb])


def test_expls_reads_a_record_only_when_it_changed(tmp_path):
    for id in range(3):
        write(tmp_path, "t", id, record("t", id, status="interrupted" if id == 2 else "finished"))
    assert listed(tmp_path)[0] == {"t": (3, 2)}
    summary = tmp_path / "__result__/t/.expls.json"
    kept = json.loads(summary.read_text())
    kept["runs"]["2"][5] = "finished"  # what the summary says of t/2, its stat unchanged
    summary.write_text(json.dumps(kept))
    assert listed(tmp_path)[0] == {"t": (3, 3)}, "t/2 was read again though its file did not change"
    write(tmp_path, "t", 2, record("t", 2, status="interrupted"))  # rewritten: read again
    assert listed(tmp_path)[0] == {"t": (3, 2)}


def test_the_summary_is_never_stale_when_a_record_changes_in_place_at_once(tmp_path):
    """The same size, the same inode, rewritten right after each listing (often within one tick of
    the file system's clock): every listing counts what the file says now."""
    path = write(tmp_path, "t", 0, record("t", 0))
    write(tmp_path, "t", 1, record("t", 1))
    for n in range(12):
        finished = n % 2 == 0
        with open(path, "r+") as f:  # in place, so the inode stays
            text = f.read()
            f.seek(0)
            f.write(text.replace('"finishex"', '"finished"') if finished else text.replace('"finished"', '"finishex"'))
        assert os.path.getsize(path) == len(text)
        assert listed(tmp_path)[0] == {"t": (2, 1 + finished)}, n


def test_a_damaged_record_is_warned_about_alike_from_the_summary(tmp_path):
    write(tmp_path, "a", 0, record("a", 0))
    write(tmp_path, "b", 0, record("b", 0, metrics=[]))
    write(tmp_path, "b", 1, '{"half')
    write(tmp_path, "b", 2, record("a", 0))  # another run's record
    (tmp_path / "__result__/b/3").mkdir()  # no record yet
    first = cli(tmp_path, "expls")
    assert (tmp_path / "__result__/b/.expls.json").exists()
    again = cli(tmp_path, "expls")
    assert (first.returncode, first.stdout, first.stderr) == (again.returncode, again.stdout, again.stderr)
    warned = first.stderr.splitlines()
    assert len(warned) == 2 and "metrics is array, not object" in warned[0] and "not its folder's b/2" in warned[1]
    assert [line.split()[:3] for line in first.stdout.splitlines()[1:]] == [["a", "1", "1"], ["b", "4", "0"]]


def test_a_summary_of_another_format_or_torn_is_read_as_none(tmp_path):
    write(tmp_path, "t", 0, record("t", 0))
    assert listed(tmp_path)[0] == {"t": (1, 1)}
    summary = tmp_path / "__result__/t/.expls.json"
    kept = json.loads(summary.read_text())
    for text in ['{"version": "0:0", "runs": ' + json.dumps({"0": kept["runs"]["0"][:5] + ["x", None, None, 0]}) + "}",
                 summary.read_text()[:20], "", "[]"]:
        summary.write_text(text)
        assert listed(tmp_path) == ({"t": (1, 1)}, "")


@contextmanager
def read_only(folder):
    """`folder` bind-mounted on itself, read-only (chmod does not stop root)."""
    done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    need("permission to mount (root)", done.returncode == 0)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_expls_in_a_folder_it_cannot_write_lists_the_same(tmp_path):
    for id in range(2):
        write(tmp_path, "t", id, record("t", id, status="failed" if id else "finished"))
    with read_only(tmp_path / "__result__"):
        out = cli(tmp_path, "expls")
        assert out.returncode == 0 and out.stderr == "", out.stderr
        assert out.stdout.splitlines()[1].split()[:3] == ["t", "2", "1"]
    assert not list((tmp_path / "__result__").rglob(".expls*"))  # nothing was, nor half was, written
    assert cli(tmp_path, "expls").stdout == out.stdout  # writable again: the same, now with a summary
    assert [p.name for p in (tmp_path / "__result__/t").glob(".*")] == [".expls.json"]


def test_a_listing_read_in_part_ends_quietly_and_a_tags_commit_comes_from_git(tmp_path):
    """A listing's exit skips the interpreter's teardown and asks git without subprocess: its
    output still all reaches a pipe, a reader that leaves early sees no traceback, and a tag's
    commit, date and subject are git's."""
    for tag in ("a", "b"):
        write(tmp_path, tag, 0, record(tag, 0))
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_COMMITTER_DATE": "2026-01-02T03:04:00"}
    for argv in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "the subject"], ["tag", "a"]):
        subprocess.run(["git", *argv], cwd=tmp_path, check=True, env={**os.environ, **env})
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout
    rows = cli(tmp_path, "expls").stdout.splitlines()
    assert rows[1].split() == ["a", "1", "1", sha[:10], "2026-01-02", "03:04", "the", "subject"]
    assert rows[2].split()[:4] == ["b", "1", "1", "ab" * 5]  # no such tag: the record's commit
    for id in range(1, 1500):  # more than a pipe holds
        write(tmp_path, "a", id, record("a", id))
    whole = cli(tmp_path, "expels", "a").stdout.splitlines()
    assert len(whole) == 1501 and whole[-1].startswith("a/1499 ")
    shell = f"{sys.executable} {CLI} expels a | head -1; exit ${{PIPESTATUS[0]}}"
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "RUNTAG_ROOT": str(tmp_path), "CI": "1"})
    assert (out.returncode, out.stdout.split()[0], out.stderr) == (0, "RUN", "")
    with open("/dev/full", "w") as full:  # a listing whose output cannot be written: one line, status 2
        out = subprocess.run([sys.executable, str(CLI), "expls"], stdout=full, stderr=subprocess.PIPE, text=True,
                             cwd=tmp_path, env={**os.environ, "RUNTAG_ROOT": str(tmp_path), "CI": "1"})
    assert out.returncode == 2 and out.stderr.startswith("runtag: no space left") and out.stderr.count("\n") == 1
