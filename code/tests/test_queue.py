"""run --queue and `queue`, with real processes: the waiter, its slots (flocks), what survives it.

What must hold: queued runs start in submission order, never more at once than the slots; a
killed waiter, a SIGHUP, a simulated reboot (every process of the project killed) leave no slot
held and no run lost, and the next `queue` starts what waits, no run twice; `queue rm` cancels a
waiting run; --after waits for its runs' end, --after-ok cancels on a failure; a queued run trains
its tagged commit after HEAD moved on, the user's tree untouched. Runs train 1 epoch on 300 digits.
A test holds a slot's flock itself to keep runs waiting as long as it needs, without a clock.
"""
import fcntl
import os
import re
import signal
from pathlib import Path

import pytest

from conftest import assert_one_line_mistake, interrupt, make_project, ok, read_json, record_at, user_state, wait_for
from test_eval import with_tiny_data

TINY = ["epochs=1", "data=tiny"]
ENDED = ("finished", "failed", "killed", "interrupted", "cancelled")


@pytest.fixture
def queued_project(tmp_path):
    project = with_tiny_data(make_project(tmp_path / "project"))
    (project.root / "__data__/broken").mkdir()
    (project.root / "__data__/broken/data.npz").write_text("not an npz file")  # data=broken: main.py fails
    yield project
    for pid in processes(project):  # a failed test leaves no waiter polling behind
        kill(pid)


def processes(project):
    """The pids of every process whose command line names this project (waiter, runs, main.py)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(project.root) in cmdline.read_bytes().decode(errors="replace") and int(cmdline.parent.name) != os.getpid():
                found.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            pass
    return found


def kill(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def queue(project, *args):
    """`run --queue ARGS`: returns the run's name, from its one line."""
    out = ok(project.cli("run", "--queue", *args))
    found = re.search(r"runtag: (\S+) queued", out.stdout)
    assert found, out.stdout
    return found.group(1)


def record(project, name):
    tag, id = name.split("/")
    return read_json(project.run_dir(tag, id) / "statistic.json")


def status(project, name):
    return (record(project, name) or {}).get("status")


def ended(project, names):
    return all(status(project, name) in ENDED for name in names)


def log(project):
    path = project.root / "__result__/.queue/waiter.log"
    return path.read_text() if path.exists() else ""


def starts(project, name):
    """How often a run was started (the child's line in the waiter's log)."""
    return log(project).count(f"runtag: {name} starts on ")


def slot_free(project, slot):
    fd = os.open(project.root / f"__result__/.queue/slot-{slot}.lock", os.O_RDONLY | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


class Held:
    """The test holds a slot, so that runs queued on it wait until release()."""

    def __init__(self, project, slot="cpu-0"):
        folder = project.root / "__result__/.queue"
        folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(folder / f"slot-{slot}.lock", os.O_RDONLY | os.O_CREAT)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self):
        os.close(self.fd)


def waiter_pid(project):
    found = re.findall(r"waiter (\d+) starts", log(project))
    return int(found[-1]) if found else None


def test_five_runs_on_two_slots_in_order(queued_project):
    project = queued_project
    names = [queue(project, "--workers", "2", "five", *TINY, f"lr={i + 1}e-3") for i in range(5)]
    assert names == [f"five/{i}" for i in range(5)]
    assert all(status(project, n) in ("queued", "running", "finished") for n in names)
    most = set()

    def done():
        running = [n for n in names if status(project, n) == "running"]
        most.add(len(running))
        return ended(project, names)
    wait_for(done, what="the five queued runs")
    assert max(most) <= 2 and 2 in most, most  # two at once, never three
    assert [status(project, n) for n in names] == ["finished"] * 5
    order = [m.group(1) for m in re.finditer(r" started (\S+) on ", log(project))]  # the waiter's own lines
    assert order == names  # in submission order, each once
    slots = {record(project, n)["queue"]["slot"] for n in names}
    assert slots == {"cpu-0", "cpu-1"}
    wait_for(lambda: slot_free(project, "cpu-0") and slot_free(project, "cpu-1"), what="the slots let go")  # as its process exits
    wait_for(lambda: "exits: nothing waits" in log(project), what="the waiter's end")
    assert "nothing waits" in ok(project.cli("queue")).stdout
    expels = ok(project.cli("expels", "five")).stdout
    assert expels.count("finished") == 5


def test_killed_waiter_and_sighup_lose_nothing(queued_project):
    project = queued_project
    names = [queue(project, "kill", *TINY, f"lr={i + 1}e-3") for i in range(3)]  # one slot: one at a time
    wait_for(lambda: status(project, names[0]) == "running" and waiter_pid(project), what="the first run")
    kill(waiter_pid(project), signal.SIGHUP)  # a closed terminal: ignored
    wait_for(lambda: status(project, names[1]) == "running", what="the second run, after a SIGHUP")
    kill(waiter_pid(project))
    wait_for(lambda: status(project, names[1]) in ENDED, what="the run the killed waiter started")
    assert status(project, names[1]) == "finished" and status(project, names[2]) == "queued"
    wait_for(lambda: slot_free(project, "cpu-0"), what="the slot let go")  # nothing holds it for a dead waiter
    listed = ok(project.cli("queue")).stdout  # lists, and starts a waiter again
    assert names[2] in listed and "waits #1" in listed
    wait_for(lambda: ended(project, names), what="the run left queued")
    assert [status(project, n) for n in names] == ["finished"] * 3
    assert [starts(project, n) for n in names] == [1, 1, 1]  # no run started twice


def test_reboot_leaves_queued_runs_that_queue_starts(queued_project):
    project = queued_project
    names = [queue(project, "boot", *TINY, f"lr={i + 1}e-3") for i in range(3)]
    wait_for(lambda: status(project, names[0]) == "running", what="the first run")
    wait_for(lambda: not [kill(pid) for pid in processes(project)], what="every process killed")  # the power cut
    assert slot_free(project, "cpu-0")
    assert [status(project, n) for n in names[1:]] == ["queued", "queued"]
    shown = ok(project.cli("expels", names[0])).stdout  # running with nobody behind it, or its main.py said so
    assert "dead" in shown or "interrupted" in shown, shown
    ok(project.cli("queue"))
    wait_for(lambda: ended(project, names[1:]), what="the runs left queued")
    assert [status(project, n) for n in names[1:]] == ["finished", "finished"]
    assert starts(project, names[0]) == 1 and status(project, names[0]) in ("running", "interrupted")  # not again


def test_queue_lists_and_rm_cancels(queued_project):
    project = queued_project
    held = Held(project)
    first, second = queue(project, "wait", *TINY), queue(project, "wait", *TINY, "lr=2e-3")
    listed = ok(project.cli("queue")).stdout.splitlines()
    assert listed[1].split()[:3] == [first, "waits", "#1"] and listed[2].split()[:3] == [second, "waits", "#2"]
    assert "queued" in ok(project.cli("expels", "wait")).stdout
    assert_one_line_mistake(project.cli("continue", first), "waits in the queue", "queue rm")
    out = ok(project.cli("queue", "rm", first))
    assert f"{first} cancelled" in out.stdout
    cancelled = record(project, first)
    assert cancelled["status"] == "cancelled" and "queue rm" in cancelled["cancelled_reason"] and cancelled["end"]
    assert_one_line_mistake(project.cli("queue", "rm", first), "not waiting")
    assert_one_line_mistake(project.cli("queue", "rm", first, second), "not waiting")  # nothing cancelled
    again = re.search(r"runtag: (\S+) queued", ok(project.cli("rerun", "--queue", second)).stdout).group(1)
    assert record(project, again)["rerun_of"] == second and status(project, again) == "queued"
    ok(project.cli("record", "-l", "waiting", first, second))
    ok(project.cli("title", "waiting"))
    table = ok(project.cli("table", "waiting")).stdout
    assert "cancelled" in table and "queued" in table, table
    held.release()
    wait_for(lambda: status(project, second) == "finished" and status(project, again) == "finished", what="the runs left")
    assert status(project, first) == "cancelled" and starts(project, first) == 0
    assert not (project.run_dir("wait", 0) / "log").exists()  # never started
    assert "cancelled" in ok(project.cli("expels", "wait")).stdout


def test_after_waits_and_after_ok_cancels_on_failure(queued_project):
    project = queued_project
    held = Held(project, "cpu-1")  # the --after runs get cpu-0 only: `pre` waits, queued, for nothing else
    pre = queue(project, "--workers", "2", "pre", *TINY)
    fine = queue(project, "--workers", "2", "--after", pre, "fine", *TINY)
    wait_for(lambda: status(project, pre) == "running", what="the first run")
    assert status(project, fine) == "queued"
    held.release()  # a slot free, yet `fine` waits for `pre`
    wait_for(lambda: status(project, fine) != "queued", what="the run after it")
    assert status(project, pre) == "finished"  # it ended before the other started
    bad = queue(project, "bad", "epochs=1", "data=broken")
    never = queue(project, "--after", bad, "--after-ok", "never", *TINY)
    wait_for(lambda: ended(project, [bad, never, fine]), what="the failed run and the one after it")
    assert status(project, bad) == "failed" and status(project, fine) == "finished"
    cancelled = record(project, never)
    assert cancelled["status"] == "cancelled" and bad in cancelled["cancelled_reason"] and "failed" in cancelled["cancelled_reason"]
    assert starts(project, never) == 0


def test_queued_run_trains_its_tagged_commit(queued_project):
    project = queued_project
    held = Held(project)
    name = queue(project, "old", *TINY)
    tagged = project.git("rev-parse", "HEAD")
    main = project.root / "code/main.py"
    project.commit("code/main.py", "raise SystemExit(3)\n" + main.read_text(), "HEAD moves on, with a main.py that fails")
    (project.root / "code/config.py").write_text((project.root / "code/config.py").read_text() + "\n# an edit\n")
    before = user_state(project)
    held.release()
    wait_for(lambda: status(project, name) in ENDED, what="the queued run")
    got = record(project, name)
    assert got["status"] == "finished" and got["commit"] == tagged  # the tagged commit's main.py ran
    wait_for(lambda: slot_free(project, "cpu-0"), what="the run's process gone, its worktree removed")
    assert user_state(project) == before


def test_queue_mistakes_are_one_line(queued_project):
    project = queued_project
    for argv, words in [(["run", "--workers", "2", "x", *TINY], ["--workers without --queue"]),
                        (["run", "--queue", "--slurm", "x"], ["--queue with --slurm"]),
                        (["run", "--queue", "--per-gpu", "2", "x"], ["--per-gpu without --gpus"]),
                        (["run", "--queue", "--after", "nope/0", "x"], ["unknown tag"]),
                        (["run", "--queue", "--gpu-free-mb", "100", "x"], ["--gpu-free-mb without --gpus"]),
                        (["queue", "rm"], ["without a run"])]:
        assert_one_line_mistake(project.cli(*argv), *words)
    assert not (project.root / "__result__/x").exists()


def test_a_gpu_slot_shows_its_gpu_only(queued_project):
    """--gpus 3 --per-gpu 2: two slots on GPU 3, each run sees CUDA_VISIBLE_DEVICES=3 (on a machine
    without GPU 3, or without any, torch finds none and the run trains on the CPU)."""
    project = queued_project
    names = [queue(project, "--gpus", "3", "--per-gpu", "2", "--gpu-free-mb", "1000", "gpu", *TINY, f"lr={i + 1}e-3")
             for i in range(2)]  # no GPU 3 (or no nvidia-ml-py): its memory reads 0, the slots alone decide
    wait_for(lambda: ended(project, names), what="the runs on GPU 3's slots")
    got = [record(project, n) for n in names]
    assert [r["status"] for r in got] == ["finished", "finished"]
    assert {r["queue"]["slot"] for r in got} <= {"gpu3-0", "gpu3-1"} and all(r["gpus"] == "3" for r in got)
    assert got[0]["queue"]["slots"] == ["gpu3-0", "gpu3-1"]


def test_con_queue_continues_an_interrupted_run(queued_project):
    project = queued_project
    proc = project.start("run", "cont", "epochs=10", "data=tiny")
    first = record_at(project, "cont", 0, epoch=1)
    interrupt(proc)
    assert status(project, "cont/0") == "interrupted"
    held = Held(project)
    out = ok(project.cli("continue", "--queue", "cont/0"))
    assert "cont/0 queued to continue on cpu-0" in out.stdout and status(project, "cont/0") == "queued"
    assert "cont/0" in ok(project.cli("queue")).stdout
    held.release()
    wait_for(lambda: status(project, "cont/0") in ENDED, what="the continued run")
    got = record(project, "cont/0")
    assert got["status"] == "finished" and got["epoch"] == 10 and got["start"] == first["start"]
    assert got["queue"]["resume"] and got["queue"]["was"] == "interrupted"


def test_a_sweep_queued_makes_each_run_once_and_returns(queued_project):
    """sweep --queue: every combination queued at once, the command returns while they wait; a
    second sweep --queue adds nothing (they are under way); once they ended, a plain sweep of the
    tag runs nothing and builds the table of all three."""
    project = queued_project
    project.commit("code/sweeps/three.yaml", "default:\n  epochs: 1\n  data: tiny\n---\nlr: [1.0e-3, 2.0e-3, 3.0e-3]\n",
                   "a sweep of 3")
    held = [Held(project, "cpu-0"), Held(project, "cpu-1")]  # no run starts until released
    out = ok(project.cli("sweep", "--queue", "--workers", "2", "sq", "code/sweeps/three.yaml"))
    names = re.findall(r"runtag: (\S+) queued", out.stdout)
    assert names == ["sq/0", "sq/1", "sq/2"] and "3 runs queued" in out.stdout, out.stdout
    assert [status(project, name) for name in names] == ["queued"] * 3
    again = ok(project.cli("sweep", "--queue", "--workers", "2", "sq", "code/sweeps/three.yaml")).stdout
    assert "3 under way" in again and "0 to run" in again and not (project.root / "__result__/sq/3").exists()
    for slot in held:
        slot.release()
    wait_for(lambda: ended(project, names), what="the sweep's queued runs")
    assert [status(project, name) for name in names] == ["finished"] * 3
    assert all(starts(project, name) == 1 for name in names)
    done = ok(project.cli("sweep", "sq", "code/sweeps/three.yaml")).stdout
    assert "3 finished already, 0 to run" in done, done
    table = (project.root / "__statistic__/table/sweep-sq.csv").read_text().splitlines()
    assert len(table) == 4, table  # a header, a row per run
    assert_one_line_mistake(project.cli("sweep", "--queue", "sr", "code/sweeps/random.yaml"), "a search")
    assert_one_line_mistake(project.cli("sweep", "--gpu-free-mb", "9", "sq", "code/sweeps/three.yaml"), "without --queue")
