"""Issue 23, items 6, 7 and 10: results on another disk, entries that cannot be read, a reused pid.

`__result__` a symlink to a folder on another filesystem (a tmpfs mounted for the test): run,
con, expels, record and table work there; two clones whose `__result__` both point at one
folder get distinct ids for one tag started at once. A symlink loop or a broken link in
`__result__`, or a loop in a tag folder, is skipped with one warning and hides nothing else.
A record saying `running` on this host with a live pid (pid 1, as after a reboot) while its
folder's lock is free is `dead`, and `con` takes it without --force; a held lock is `running`.
"""
import fcntl
import json
import os
import socket
import subprocess

import pytest

from conftest import PYTHON, assert_one_line_mistake, interrupt, make_project, need, ok, record_at, wait_for
from test_fault_typed import valid, write


@pytest.fixture
def other_disk(tmp_path):
    """A folder on a filesystem of its own: a 64 MiB tmpfs, mounted for this test (needs root)."""
    where = tmp_path / "other-disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(where)],
                             capture_output=True, text=True).returncode == 0
    need("mounting a tmpfs (root, or a container allowed to mount)", mounted)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def linked(project, target):
    """The project's __result__ as a symlink to target, as `ln -s /big/results __result__` makes it."""
    target.mkdir(parents=True, exist_ok=True)
    (project.root / "__result__").symlink_to(target)
    return target


def test_results_on_another_disk_run_continue_list_and_table(project, other_disk):
    results = linked(project, other_disk / "results")
    assert os.stat(results).st_dev != os.stat(project.root).st_dev  # truly another filesystem
    (other_disk / "statistic").mkdir()
    (project.root / "__statistic__").symlink_to(other_disk / "statistic")  # lists, titles, tables there too
    run = project.start("run", "-f", "far", "epochs=2", "checkpoint_interval=0")
    record_at(project, "far", 0, epoch=1)
    interrupt(run)
    assert project.record("far", 0)["status"] == "interrupted"
    assert (results / "far/0/checkpoint").is_dir()

    out = ok(project.cli("con", "far"))
    assert project.record("far", 0)["status"] == "finished", out.stdout + out.stderr
    assert "finished" in ok(project.cli("expels", "far")).stdout
    ok(project.cli("record", "far/0"))
    assert "far/0" in ok(project.cli("table")).stdout
    assert (other_disk / "statistic/table/record.csv").is_file() and (other_disk / "statistic/exper-list/finished.txt").is_file()
    assert sorted(p.name for p in results.iterdir() if not p.name.startswith(".")) == ["far"]


def test_two_clones_sharing_one_results_folder_get_distinct_ids(project, tmp_path, other_disk):
    """Both clones' __result__ link to one folder; two runs of one tag from each, started at once."""
    shared = other_disk / "results"
    clones = [project, make_project(tmp_path / "clone")]
    for clone in clones:
        linked(clone, shared)
    started = [clone.start("run", "same", "epochs=50") for clone in clones for _ in range(2)]
    try:  # each trainer's Recorder.start fills hparams: all four runs got as far as training
        wait_for(lambda: len(training(shared / "same")) == 4 or any(s.poll() is not None for s in started),
                 what="four runs to start training")
        assert all(s.poll() is None for s in started), "a run ended before it trained"
    finally:
        outs = [interrupt(s) for s in started]
    assert sorted(training(shared / "same")) == [0, 1, 2, 3], outs
    commits = {json.loads((shared / f"same/{id}/statistic.json").read_text())["commit"] for id in range(4)}
    assert commits == {clone.git("rev-parse", "HEAD") for clone in clones}  # both clones' runs are there


def training(tag_dir):
    """The ids under a tag folder whose record shows its trainer started."""
    found = []
    for path in tag_dir.glob("*/statistic.json"):
        try:
            if json.loads(path.read_text()).get("hparams"):
                found.append(int(path.parent.name))
        except (OSError, ValueError):
            pass  # being replaced
    return found


def test_a_symlink_loop_or_a_broken_link_is_skipped_with_one_warning(project):
    head = project.git("rev-parse", "HEAD")
    for tag in ("a", "b"):
        write(project, tag, 0, valid(tag, 0, commit=head))
    results = project.root / "__result__"
    (results / "loop").symlink_to("loop")          # ELOOP as `expls` looks at it
    (results / "gone").symlink_to("/nonexistent")  # a disk no longer mounted
    (results / "a/7").symlink_to("7")              # a loop where a run folder should be
    out = ok(project.cli("expls"))
    assert [line.split()[0] for line in out.stdout.splitlines()[1:]] == ["a", "b"], out.stdout
    warned = out.stderr.splitlines()
    assert len(warned) == 3 and all(line.startswith("runtag: warning: ") and " — " in line for line in warned), out.stderr
    for words in ("/loop is unreadable", "/gone is a broken link", "a/7/statistic.json is unreadable"):
        assert sum(words in line for line in warned) == 1, (words, out.stderr)

    out = ok(project.cli("expels", "*"))
    rows = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()[1:]}
    assert rows == {"a/0": "finished", "a/7": "damaged", "b/0": "finished"}, out.stdout
    assert len(out.stderr.splitlines()) == 3, out.stderr


def test_a_live_pid_with_a_free_lock_is_dead_and_a_held_lock_is_running(project):
    head = project.git("rev-parse", "HEAD")
    record = {**valid("boot", 0, status="running", commit=head), "pid": 1, "host": socket.gethostname()}
    path = write(project, "boot", 0, record)
    assert "dead" in ok(project.cli("expels", "boot")).stdout.splitlines()[1]
    # con is past `is still running`: on to the checkpoint it needs (a real one in the test above)
    assert_one_line_mistake(project.cli("con", "boot/0"), "boot/0 has no checkpoint")

    fd = os.open(path.parent / "lock", os.O_RDONLY | os.O_CREAT)
    try:
        holder = subprocess.Popen([PYTHON, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                                  pass_fds=[fd])  # holds the lock as a run's processes do
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.close(fd)
        assert " running " in ok(project.cli("expels", "boot")).stdout.splitlines()[1]
        assert_one_line_mistake(project.cli("con", "boot/0", "--force"), "boot/0 is running right now on this host")
    finally:
        holder.communicate("")
    assert "dead" in ok(project.cli("expels", "boot")).stdout.splitlines()[1]


def test_con_takes_a_dead_run_whose_pid_was_reused_without_force(project):
    run = project.start("run", "-f", "boot", "epochs=2", "checkpoint_interval=0")
    record_at(project, "boot", 0, epoch=1)
    interrupt(run)
    path = project.run_dir("boot", 0) / "statistic.json"
    path.write_text(json.dumps({**project.record("boot", 0), "status": "running", "pid": 1}))  # after a reboot
    assert "dead" in ok(project.cli("expels", "boot")).stdout.splitlines()[1]
    ok(project.cli("con", "boot"))
    assert project.record("boot", 0)["status"] == "finished"
