"""A sweep is owned like a run: its driver killed (kill -9), started twice, or left by its
terminal, and then repeated. Its runs die with it (ending `interrupted` after their checkpoint),
a second driver of the tag is refused in one line or waits (--wait), a closed terminal stops
nothing, a killed driver leaves no temporary file, and the repeat waits for the runs still ending,
continues the interrupted ones and ends with exactly one finished run per combination."""
import fcntl
import os
import random
import re
import signal
import subprocess
import termios
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import PYTHON, Progress, assert_one_line_mistake, need_module, ok, read_json
from faultlib import drain, kill_all, untouched
from utils import process, runlock

LRS = (0.002, 0.004, 0.006)


def grid(project, name, epochs, lrs=LRS):
    """A committed grid of len(lrs) short runs (checkpoint every epoch) under code/sweeps/."""
    text = (f"default: {{epochs: {epochs}, device: cpu, channels: 4, checkpoint_interval: 0}}\n---\n"
            f"lr: [{', '.join(map(str, lrs))}]\n")
    (project.root / "code/sweeps").mkdir(exist_ok=True)
    project.commit(f"code/sweeps/{name}.yaml", text, f"sweep {name}")
    return f"code/sweeps/{name}.yaml"


class Driver:
    """`sweep` in the background, its stdout in a file, its temporary files in a folder of its own."""

    def __init__(self, project, tmp, *args, **popen):
        self.tmp = Path(tmp) / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.out_path = Path(tmp) / f"driver.{time.monotonic_ns()}.out"
        with open(self.out_path, "w") as out:
            self.proc = subprocess.Popen([PYTHON, "code/utils/cli.py", "sweep", *map(str, args)], cwd=project.root,
                                         env=project.env(TMPDIR=str(self.tmp)), stdout=out,
                                         stderr=subprocess.STDOUT, **popen)
        self.pid = self.proc.pid

    def out(self):
        return self.out_path.read_text(errors="replace")

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait()

    def leftovers(self):
        return [p.name for p in self.tmp.iterdir() if p.name.startswith("runtag-name.")]


def until(predicate, alive=lambda: True, what="condition"):
    """Wait for predicate() while `alive()` says the work goes on; its value."""
    progress = Progress()  # only against a hang: fails once nothing has used the CPU for a while
    while not (value := predicate()):
        assert alive() and not progress.stalled(), f"no longer waiting for {what}"
        time.sleep(0.02)
    return value


def records(project, tag):
    base = project.root / "__result__" / tag
    ids = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []
    return {i: read_json(project.run_dir(tag, i) / "statistic.json") for i in ids}


def trainers(project):
    """The pids of main.py processes of this project still alive."""
    mine, found = f"{project.root}/code/main.py".encode(), []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if mine in cmdline.read_bytes() and process.alive(int(cmdline.parent.name)):
                found.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            pass
    return found


def ending(project, tag):
    """True while a run of the tag holds its folder's lock: still alive."""
    return any(runlock.locked(project.run_dir(tag, i)) for i in records(project, tag))


def one_finished_each(project, tag, lrs=LRS):
    """Exactly one finished run per combination, and none other finished."""
    finished = Counter(r["overrides"]["lr"] for r in records(project, tag).values()
                       if r and r["status"] == "finished")
    assert finished == Counter(lrs), finished


@pytest.fixture
def cleanup(project):
    yield
    kill_all(trainers(project))  # a failing test (the change undone) may leave orphans training


def test_runs_of_a_killed_driver_end_interrupted_and_the_repeat_continues_them(project, tmp_path, cleanup):
    path = grid(project, "orphans", epochs=12)
    with untouched(project):
        driver = Driver(project, tmp_path, "orphans", path, "--workers", "2")
        both = until(lambda: len(r := records(project, "orphans")) == 2
                     and all(x and x["status"] == "running" and x["epoch"] >= 1 for x in r.values()) and r,
                     lambda: driver.proc.poll() is None, "two runs training")
        driver.kill()
        until(lambda: not ending(project, "orphans"), what="the runs to end")
        after = records(project, "orphans")
        assert {i: r["status"] for i, r in after.items()} == {0: "interrupted", 1: "interrupted"}
        assert all(r["epoch"] < 12 for r in after.values())  # stopped, not trained to the end
        assert not trainers(project) and not any(process.alive(r["pid"]) for r in both.values())
        assert driver.leftovers() == []
        again = ok(project.cli("sweep", "orphans", path, "--workers", "2"))
    said = re.search(r"3 combinations, 0 finished already, 3 to run \(2 continued: (\S+), (\S+)\)", again.stdout)
    assert said and sorted(said.groups()) == ["orphans/0", "orphans/1"], again.stdout  # ids race: either order
    assert again.stdout.count("(continued from its newest checkpoint)") == 2
    assert len(records(project, "orphans")) == 3  # continued, not started again
    one_finished_each(project, "orphans")


def test_a_second_driver_of_the_tag_is_refused_in_one_line(project, tmp_path, cleanup):
    path = grid(project, "twice", epochs=2, lrs=LRS[:2])
    first = Driver(project, tmp_path, "twice", path)
    until(lambda: "combinations," in first.out(), lambda: first.proc.poll() is None, "the first to own the sweep")
    second = project.cli("sweep", "twice", path)
    assert_one_line_mistake(second, "sweep twice is being driven right now", f"pid {first.pid} on ", "--wait")
    assert second.stdout == ""  # refused before counting, tagging or starting anything
    assert first.proc.wait() == 0, first.out()
    one_finished_each(project, "twice", LRS[:2])
    assert len(records(project, "twice")) == 2


def test_two_identical_sweeps_at_once_with_wait_make_one_run_per_combination(project, tmp_path, cleanup):
    path = grid(project, "both", epochs=2, lrs=LRS[:2])
    drivers = [Driver(project, tmp_path / str(n), "both", path, "--wait") for n in range(2)]
    for driver in drivers:
        assert driver.proc.wait() == 0, driver.out()
    outs = [driver.out() for driver in drivers]
    assert sum("waiting for it to end (--wait)" in out for out in outs) == 1, outs
    assert any("2 finished already, 0 to run" in out for out in outs), outs
    one_finished_each(project, "both", LRS[:2])
    assert len(records(project, "both")) == 2


def test_a_second_search_of_the_tag_is_refused_in_one_line(project, tmp_path, cleanup):
    need_module("optuna")
    (project.root / "code/sweeps").mkdir(exist_ok=True)
    project.commit("code/sweeps/rs.yaml", "search:\n  method: random\n  trials: 1\n  metric: best/val_acc\n"
                   "  goal: max\n  prune: none\ndefault:\n  epochs: 1\n  device: cpu\n  channels: 4\n---\n"
                   "lr: loguniform(1e-3, 1e-1)\n", "search rs")
    first = Driver(project, tmp_path, "rs", "code/sweeps/rs.yaml")
    until(lambda: "1 trials, 0 finished" in first.out(), lambda: first.proc.poll() is None, "the first search")
    second = project.cli("sweep", "rs", "code/sweeps/rs.yaml")
    assert_one_line_mistake(second, "sweep rs is being driven right now", f"pid {first.pid} on ")
    assert first.proc.wait() == 0, first.out()
    assert len(records(project, "rs")) == 1


def test_a_driver_whose_terminal_closes_drives_the_sweep_to_its_table(project, tmp_path, cleanup):
    """Its terminal is a pseudo-terminal; closing the master side is closing the window: SIGHUP
    to the session, then EIO on every write to it."""
    path = grid(project, "hung", epochs=2)
    master, slave = os.openpty()
    proc = subprocess.Popen([PYTHON, "code/utils/cli.py", "sweep", "hung", path], cwd=project.root,
                            env=project.env(), stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    threading.Thread(target=drain, args=(master,), daemon=True).start()
    with untouched(project):
        until(lambda: records(project, "hung"), lambda: proc.poll() is None, "the first run")
        os.close(master)  # the window closes, 2 of the 3 runs still to start
        assert until(lambda: proc.poll() is not None, what="the sweep to end") and proc.returncode == 0
    one_finished_each(project, "hung")
    listed = (project.root / "__statistic__/exper-list/sweep-hung.txt").read_text().split()
    assert sorted(listed) == [f"hung/{i}" for i in range(3)]
    assert len((project.root / "__statistic__/table/sweep-hung.csv").read_text().splitlines()) == 4



def test_a_resumed_sweeps_title_shows_what_differs_across_all_its_runs(project, tmp_path, cleanup):
    path = grid(project, "titled", epochs=2, lrs=LRS[:2])
    driver = Driver(project, tmp_path, "titled", path)
    until(lambda: (r := records(project, "titled").get(0)) and r["status"] == "finished",
          lambda: driver.proc.poll() is None, "the first run to finish")
    driver.proc.send_signal(signal.SIGINT)  # Ctrl-C: the second run (if started) is interrupted
    assert driver.proc.wait() == 130, driver.out()
    title = project.root / "__statistic__/title/sweep-titled.json"
    assert '// "lr",  // same in every run: 0.002' in title.read_text()  # one run: nothing differs yet
    ok(project.cli("sweep", "titled", path))
    text = title.read_text()
    assert '\n    "lr",\n' in text and "same in every run: 0.002" not in text, text
    header = (project.root / "__statistic__/table/sweep-titled.csv").read_text().splitlines()[0]
    assert "lr" in header.split(",")


@pytest.mark.slow
def test_a_grid_driver_killed_at_5_random_moments_ends_with_one_finished_run_each(project, tmp_path, cleanup):
    lrs = (0.002, 0.003, 0.004, 0.005)
    path = grid(project, "killed", epochs=8, lrs=lrs)
    rng, moments = random.Random(23), []
    with untouched(project):
        for n in range(5):
            driver = Driver(project, tmp_path / str(n), "killed", path, "--workers", "2")
            moment = rng.uniform(0.5, 12.0)  # from the driver's start-up to its runs' last epochs
            start = time.monotonic()
            until(lambda: driver.proc.poll() is not None or time.monotonic() - start > moment, what="the moment")
            moments.append((round(moment, 1), driver.proc.poll()))
            if driver.proc.poll() is None:
                driver.kill()
            assert driver.leftovers() == []
        last = ok(project.cli("sweep", "killed", path, "--workers", "2"))
        until(lambda: not ending(project, "killed"), what="the runs to end")
    one_finished_each(project, "killed", lrs)
    assert not trainers(project)
    statuses = Counter(r["status"] for r in records(project, "killed").values() if r)
    assert set(statuses) <= {"finished", "interrupted", "dead", "killed"}, (statuses, moments)
    assert "4 of 4 combinations finished" in last.stdout
    print("moments (s, exit status if it had ended):", moments, "statuses:", dict(statuses))
