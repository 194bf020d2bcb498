"""The launcher (`run`, `con`, `rerun`) outlives what it started and says how it ended: a trainer
killed outright (SIGKILL: the kernel's out-of-memory killer, say) is recorded `killed`, with its
signal, in one line; a Ctrl-C of a DDP run while its processes start up prints no traceback."""
import os
import signal

import pytest

from conftest import children, communicate, learned, read_json, record_at, wait_for
from faultlib import kill_all, untouched

RUN = ["epochs=3", "checkpoint_interval=0"]  # a checkpoint every epoch: `con` has one to go on from


def killed_line(err, run):
    """The one line `run` says about its killed trainer."""
    lines = [line for line in err.splitlines() if line.startswith("runtag: ")]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f"runtag: {run} was killed by SIGKILL (out of memory?) — `con {run}`"), lines[0]
    return lines[0]


def kill_trainer(project, tag, *options):
    """`run -f tag` killed -9 where its record names the trainer, after epoch 1's checkpoint: (exit, stderr)."""
    proc = project.start("run", "-f", tag, *options, *RUN)
    try:
        pid = record_at(project, tag, epoch=1)["pid"]
        wait_for(lambda: (project.run_dir(tag, 0) / "checkpoint/epoch_last.pth").exists(), what="a checkpoint")
        assert pid != proc.pid  # the trainer's own (main.py, or DDP's rank 0), not the launcher's
        os.kill(pid, signal.SIGKILL)
        _, err = communicate(proc)
    finally:
        proc.kill()
    return proc.returncode, err


@pytest.mark.slow
def test_a_trainer_killed_under_its_launcher_ends_killed_and_con_goes_on_to_the_same_metrics(project):
    with untouched(project):
        project.cli("run", "-f", "straight", *RUN, check=True)
        rc, err = kill_trainer(project, "oom")
        record = project.record("oom", 0)
        assert rc == 128 + signal.SIGKILL, err
        assert record["status"] == "killed" and record["signal"] == "SIGKILL" and record["end"], record
        assert err.strip() == killed_line(err, "oom/0")  # that line, and nothing else
        assert " killed " in project.cli("expels", "oom").stdout
        assert "oom/0" in project.cli("--complete", "con", "").stdout.split()  # tab completion offers it to con
        out = project.cli("continue", "oom", check=True)  # the newest unfinished run of the tag
    record = project.record("oom", 0)
    assert record["status"] == "finished", out.stdout + out.stderr
    assert learned(record) == learned(project.record("straight", 0))


@pytest.mark.slow
def test_a_ddp_rank_killed_under_its_launcher_ends_killed(project):
    rc, err = kill_trainer(project, "ddp", "--nproc", "2")
    record = project.record("ddp", 0)
    assert rc == 128 + signal.SIGKILL, err[-3000:]
    assert record["status"] == "killed" and record["signal"] == "SIGKILL", record
    killed_line(err, "ddp/0")
    out = project.cli("continue", "ddp/0", check=True)
    record = project.record("ddp", 0)
    assert record["status"] == "finished" and record["world_size"] == 2, out.stdout + out.stderr


def ranks(launcher):
    """The DDP ranks under a launcher: the children of its torch.distributed.run."""
    return [rank for agent in children(launcher) for rank in children(agent)]


MOMENTS = {  # while the 3 processes start: Python and its imports, torch, the process group
    "ranks started": lambda project, run, tag: len(ranks(run.pid)) == 3,
    "rank 0 recording": lambda project, run, tag: (read_json(project.run_dir(tag, 0) / "statistic.json")
                                                   or {}).get("world_size") == 3,
}


@pytest.mark.slow
@pytest.mark.parametrize("moment", MOMENTS)
def test_a_ctrl_c_of_a_3_process_run_in_its_start_up_prints_no_traceback(project, moment):
    tag = moment.split()[-1]
    run = project.start("run", tag, "--nproc", "3", "epochs=1")
    try:
        wait_for(lambda: MOMENTS[moment](project, run, tag) or run.poll() is not None, what=moment)
        started = ranks(run.pid)
        run.send_signal(signal.SIGINT)  # Ctrl-C: the terminal's foreground job is `run`
        out, err = communicate(run)
    finally:
        run.kill()
    assert run.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    assert project.record(tag, 0)["status"] == "interrupted"
    wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") and read_state(pid) != "Z" for pid in started),
             what="the ranks to end")
    kill_all(started)


def read_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


@pytest.mark.slow
def test_a_rank_whose_collective_a_stopped_peer_broke_ends_quietly(project):
    """The launcher stops every rank, but one whose peer left first can meet the broken connection
    before its own stop: it ends as stopped, its traceback in the log, not on the terminal.
    Here rank 0 alone leaves (at once: its sockets close a second before the launcher sees it go), once
    its peers wait for its broadcast; the launcher stops them after it."""
    main = (project.root / "code/main.py").read_text()
    old = "        net = DistributedDataParallel("
    stop = ("        import os, pathlib, time; waiting = pathlib.Path(os.environ['RUNTAG_TEST_WAITING'])\n"
            "        if run.rank:\n            os.close(os.open(waiting / str(run.rank), os.O_CREAT))\n"
            "            torch.distributed.broadcast(torch.zeros(1), src=0)  # waits for rank 0's tensor\n"
            "        else:\n            while len(os.listdir(waiting)) < 2: time.sleep(0.05)\n"
            "            time.sleep(0.5); os._exit(130)  # they wait for it by now\n")
    project.commit("code/main.py", main.replace(old, stop + old, 1), "rank 0 stops in start-up")
    waiting = project.root.parent / "waiting"
    waiting.mkdir()
    env = {"RUNTAG_TEST_WAITING": str(waiting), "PET_MONITOR_INTERVAL": "1"}  # it sees rank 0 gone a second later
    err = project.cli("run", "peer", "--nproc", "3", "epochs=1", env=env).stderr
    log = (project.run_dir("peer", 0) / "log").read_text()
    assert "] Traceback" not in err, err[-3000:]  # (the launcher's ChildFailedError about rank 0 is torch's)
    for rank in (1, 2):
        assert f"[rank {rank}] Traceback" in log, log[-3000:]
    assert log.count("Connection closed by peer") == 2, log[-3000:]
