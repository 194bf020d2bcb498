"""du, gc, rm (utils/housekeeping/): real runs, real files. du's totals are the files' bytes
counted here on our own; gc removes exactly what --dry-run listed, and the run still reads,
compares and reruns to the same metrics; rm moves a run whole into the trash and --undo gives it
back byte for byte, list lines included; a kill -9 of gc or rm leaves every run whole somewhere."""
import json
import os
import shutil
import signal
import subprocess

import pytest

from conftest import PYTHON, assert_one_line_mistake, learned, make_project, ok, read_json, user_state, wait_for
from test_eval import with_tiny_data

TINY = ["epochs=3", "data=tiny", "checkpoint_interval=0", "keep_checkpoints=0"]  # a file every epoch, all kept


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """big/0 and big/1 (3 epochs, 3 checkpoint files each) and a failed run bad/0, all in list `all`."""
    project = with_tiny_data(make_project(tmp_path_factory.mktemp("housekeeping") / "project"))
    (project.root / "__data__/broken").mkdir()
    (project.root / "__data__/broken/data.npz").write_text("not an npz file")
    ok(project.cli("run", "-f", "big", *TINY))
    ok(project.cli("run", "-f", "big", *TINY, "lr=2e-3"))
    project.cli("run", "bad", "epochs=1", "data=broken")
    ok(project.cli("record", "-l", "all", "big", "bad"))
    return project


def files_of(folder):
    """{relative path: bytes} of every regular file under a folder, links as their target text."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(folder))] = ("link", os.readlink(path))
        elif path.is_file():
            found[str(path.relative_to(folder))] = path.read_bytes()
    return found


def copies(project, tag, n):
    """n copies of big/0 as runs tag/0..n-1, each record naming its own tag and id."""
    for id in range(n):
        target = project.run_dir(tag, id)
        shutil.copytree(project.run_dir("big", 0), target, symlinks=True)
        record = json.loads((target / "statistic.json").read_text())
        (target / "statistic.json").write_text(json.dumps({**record, "tag": tag, "id": id}))


def test_du_totals_are_the_bytes_of_the_files(project):
    out = ok(project.cli("du", "--bytes")).stdout.splitlines()
    total = [line for line in out if line.rstrip().endswith("runs)")][0].split()
    on_disk = {"checkpoints": 0, "tensorboard": 0, "log": 0, "other": 0}
    for run_dir in (project.root / "__result__").glob("*/[0-9]*"):
        for path in run_dir.rglob("*"):
            if path.is_file() and not path.is_symlink():
                top = path.relative_to(run_dir).parts[0]
                kind = {"checkpoint": "checkpoints", "tensorboard": "tensorboard", "log": "log"}.get(top, "other")
                on_disk[kind] += os.lstat(path).st_size
    assert [int(x) for x in total[:5]] == [sum(on_disk.values()), *on_disk.values()], out
    assert "(3 runs)" in out[-1] and on_disk["checkpoints"] > 0
    by_tag = ok(project.cli("du", "--bytes", "--by", "tag")).stdout.splitlines()
    assert [line.split()[-1] for line in by_tag[1:3]] == ["big", "bad"]  # largest first
    assert by_tag[-1].split()[0] == total[0]
    kinds = ok(project.cli("du", "--by", "kind", "big/0")).stdout.splitlines()
    assert kinds[1].split()[-1] == "checkpoints" and "(1 runs)" in kinds[-1]


def test_gc_removes_what_its_dry_run_listed_and_the_run_still_works(project):
    before = files_of(project.run_dir("big", 0))
    listed = ok(project.cli("gc", "--dry-run")).stdout.splitlines()
    assert files_of(project.run_dir("big", 0)) == before
    would = sorted(line.split()[2] for line in listed if line.startswith("would remove"))
    assert would and all(name.startswith("big/") for name in would)  # bad/0 failed: left alone
    done = ok(project.cli("gc")).stdout.splitlines()
    assert sorted(line.split()[1] for line in done if line.startswith("removed")) == would
    after = files_of(project.run_dir("big", 0))
    gone = {f"big/0/{name}" for name in set(before) - set(after)}
    assert gone == {name for name in would if name.startswith("big/0/")}
    left = sorted(name for name in after if name.startswith("checkpoint/"))
    assert left == ["checkpoint/epoch_3.pth", "checkpoint/epoch_best.pth", "checkpoint/epoch_last.pth"] or \
        len(left) == 4, left  # last, best and their files only (best may be an earlier epoch)
    record = project.record("big", 0)
    assert record["gc"]["removed"] and record["gc"]["freed_bytes"] > 0
    ok(project.cli("title", "all"))
    table = ok(project.cli("table", "all")).stdout
    assert "big/0" in table and "big/1" in table
    ok(project.cli("diff", "big/0", "big/1"))
    again = ok(project.cli("rerun", "-f", "big/0"))
    new = project.record("big", 2)
    assert new["status"] == "finished" and learned(new) == learned(record), again.stdout
    out = project.cli("eval", "big/0", "--checkpoint", "epoch_1")
    assert_one_line_mistake(out, "no checkpoint epoch_1.pth", "gc")


def test_keep_checkpoints_done_trims_a_finished_run(project):
    ok(project.cli("run", "-f", "trim", *TINY, "keep_checkpoints_done=0"))
    names = sorted(p.name for p in (project.run_dir("trim", 0) / "checkpoint").iterdir())
    assert len(names) in (3, 4) and "epoch_best.pth" in names and "epoch_last.pth" in names, names
    assert project.record("trim", 0)["gc"]["removed"]


def test_rm_then_undo_gives_the_run_and_its_lines_back_byte_for_byte(project):
    state = user_state(project)
    run_dir, lists = project.run_dir("big", 1), project.root / "__statistic__/exper-list/all.txt"
    before, listed = files_of(run_dir), lists.read_bytes()
    assert_one_line_mistake(project.cli("rm", "big/1"), "no terminal", "--yes")  # stdin is not a terminal
    assert run_dir.is_dir()
    ok(project.cli("rm", "--yes", "big/1"))
    assert not run_dir.exists() and b"big/1" not in lists.read_bytes()
    assert "big/1" not in ok(project.cli("expels", "big")).stdout
    assert "big/1" in ok(project.cli("rm", "--list")).stdout
    ok(project.cli("rm", "--undo", "big/1"))
    assert files_of(run_dir) == before and lists.read_bytes() == listed
    assert not ok(project.cli("rm", "--list")).stdout.count("big/")
    assert user_state(project) == state


def test_rm_tag_deletes_the_git_tag_and_undo_puts_it_back(project):
    ok(project.cli("run", "-f", "gone", "epochs=1", "data=tiny"))
    commit = project.git("rev-parse", "gone^{commit}")
    ok(project.cli("rm", "--yes", "--tag", "gone"))
    assert not project.git("tag", "-l", "gone") and not (project.root / "__result__/gone").exists()
    assert "gone" not in ok(project.cli("expls")).stdout
    ok(project.cli("rm", "--undo", "gone"))
    assert project.git("rev-parse", "gone^{commit}") == commit and project.record("gone", 0)["status"] == "finished"
    ok(project.cli("rm", "--yes", "gone"))
    ok(project.cli("rm", "--purge", "--yes"))
    assert not list((project.root / "__result__/.trash").iterdir()) or \
        all(p.name.startswith(".") for p in (project.root / "__result__/.trash").iterdir())


def test_rm_mistakes_are_one_line_and_remove_nothing(project):
    lock = os.open(project.run_dir("big", 0) / "lock", os.O_RDONLY)
    import fcntl
    fcntl.flock(lock, fcntl.LOCK_EX)  # as a live run holds it
    try:
        assert_one_line_mistake(project.cli("rm", "--yes", "big/0"), "big/0 is running")
    finally:
        os.close(lock)
    assert project.run_dir("big", 0).is_dir()
    assert_one_line_mistake(project.cli("rm", "--yes", "nope/0"), "unknown tag")
    assert_one_line_mistake(project.cli("rm"), "rm takes runs")
    assert_one_line_mistake(project.cli("rm", "--undo", "never/3"), "no removed run")
    assert_one_line_mistake(project.cli("gc", "--keep", "first"), "--keep")


def killed_midway(project, argv, started):
    """`argv` run, and SIGKILLed as soon as started() holds (or once it ended by itself)."""
    proc = subprocess.Popen([PYTHON, "code/utils/cli.py", *argv], cwd=project.root, env=project.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: started() or proc.poll() is not None, what=f"{argv[0]} to begin")
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_kill_during_rm_leaves_each_run_whole_here_or_in_the_trash(project):
    copies(project, "many", 30)
    ok(project.cli("record", "-l", "many", "many"))
    whole = {id: files_of(project.run_dir("many", id)) for id in range(30)}
    trash = project.root / "__result__/.trash"
    killed_midway(project, ["rm", "--yes", "many"], lambda: any(trash.glob("*_many_*/run")))
    ok(project.cli("rm", "--list"))  # settles what the kill cut short
    entries = {json.loads((e / "trash.json").read_text())["name"]: e for e in trash.glob("*_many_*")}
    lines = (project.root / "__statistic__/exper-list/many.txt").read_text().split()
    for id in range(30):
        here, there = project.run_dir("many", id), entries.get(f"many/{id}")
        assert here.exists() != bool(there), id  # in one place only
        assert files_of(here if here.exists() else there / "run") == whole[id], id
        assert (f"many/{id}" in lines) == here.exists(), id
    ok(project.cli("rm", "--undo", "many"))
    assert all(files_of(project.run_dir("many", id)) == whole[id] for id in range(30))


def test_a_kill_during_gc_leaves_each_run_whole_or_collected(project):
    copies(project, "heap", 30)
    whole = {id: files_of(project.run_dir("heap", id)) for id in range(30)}
    killed_midway(project, ["gc", "heap"], lambda: any((read_json(project.run_dir("heap", id) / "statistic.json")
                                                        or {}).get("gc") for id in range(30)))
    for id in range(30):
        now, record = files_of(project.run_dir("heap", id)), project.record("heap", id)
        removed = {f"checkpoint/{name}" for name in (record.get("gc") or {}).get("removed", [])}
        assert set(whole[id]) - set(now) <= removed, id  # nothing went that its record does not name
        assert {"checkpoint/epoch_best.pth", "checkpoint/epoch_last.pth"} <= set(now), id
    ok(project.cli("gc", "heap"))
    assert not ok(project.cli("gc", "--dry-run", "heap")).stdout.count("would remove")
