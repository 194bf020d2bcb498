"""Slurm, for real: a one-node cluster (code/tests/slurm/start.sh; .ci/run starts it) runs the
jobs that `run --slurm` and `sweep --backend slurm` submit through submitit, while the command
that submitted them has already exited. A test project's epoch.py can sleep in each step
(STEP_SLEEP, seconds), so that a test can preempt a run in the middle of its training."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from conftest import assert_one_line_mistake, learned, make_project, need, need_module, ok, read_json, stretched, wait_for
from test_steps import curves

BACKWARD = "        scaler.scale(loss / args.grad_accum).backward()\n"
SLOW = BACKWARD + '        time.sleep(float(os.environ.get("STEP_SLEEP", 0)))  # tests only: see code/tests/test_slurm.py\n'
RUN = ["epochs=4", "checkpoint_steps=5", "checkpoint_interval=0"]  # a step checkpoint every 5 batches
STEPS = ["max_steps=80", "eval_every=15", "log_every=5", "checkpoint_steps=5", "checkpoint_interval=0"]  # 4 epochs
ENV = {"OMP_NUM_THREADS": "1"}  # the same threads in a job and here: bit-identical metrics
FOUR = "default: {epochs: 1}\n---\nlr: [0.01, 0.003]\nchannels: [8, 16]\n"


def slurm_up():
    if not shutil.which("sinfo"):
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    need("a running Slurm (apt-get install -y slurm-wlm munge; bash code/tests/slurm/start.sh)", slurm_up())
    need_module("submitit")
    project = make_project(tmp_path_factory.mktemp("slurm") / "project")
    epoch_py = project.root / "code/epoch.py"
    text = epoch_py.read_text()
    assert BACKWARD in text
    epoch_py.write_text(text.replace("import sys\n", "import os\nimport sys\nimport time\n", 1).replace(BACKWARD, SLOW))
    (project.root / "code/sweeps/four.yaml").write_text(FOUR)
    project.git("add", "-A")
    project.git("commit", "-qm", "a step can be slowed; a sweep of four")
    yield project
    jobs = [e["job"] for folder in (project.root / "__statistic__/slurm").glob("*")
            for e in read_json(folder / "submitted.json") or []]
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True)


def sweep_file(project, name, text):
    """code/sweeps/<name>.yaml, committed; its path."""
    (project.root / f"code/sweeps/{name}.yaml").write_text(text)
    project.git("add", "-A")
    project.git("commit", "-qm", f"sweep {name}")
    return f"code/sweeps/{name}.yaml"


def journal(project, tag):
    """The search's journal, a JSON object a line."""
    return [json.loads(line) for line in (project.root / f"__statistic__/search/{tag}.journal").read_text().splitlines()]


def state(job):
    """The job's state as squeue says it ("" once Slurm has forgotten it)."""
    out = subprocess.run(["squeue", "-h", "-r", "--states=all", "-o", "%T", "-j", job], capture_output=True, text=True)
    return out.stdout.strip()


def processes_of(job):
    """The pids of this machine's processes that belong to the job (SLURM_JOB_ID in their environment)."""
    mark = f"SLURM_JOB_ID={job}\0".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            pass
    return found


def submitted(out):
    """The job id that `run --slurm` or a Slurm sweep printed."""
    line = next(line for line in out.stdout.splitlines() if "as Slurm job" in line)
    return line.split("as Slurm job ")[1].split()[0]


def in_slurm(predicate, what, stall=120):
    """predicate()'s value once truthy, waited for while Slurm holds a job: a job's processes are
    slurmstepd's, not the test's, so conftest's progress (the test's own CPU) cannot see them.
    Fails once Slurm has held no job for `stall` seconds (stretched by the load)."""
    seen = time.monotonic()
    while not (value := predicate()):
        if subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.strip():
            seen = time.monotonic()
        assert time.monotonic() - seen < stretched(stall), f"Slurm holds no job, still waiting for {what}"
        time.sleep(0.2)
    return value


def finished(project, tag, id):
    path = project.run_dir(tag, id) / "statistic.json"
    return in_slurm(lambda: (r := read_json(path)) and r["status"] == "finished" and r, what=f"{tag}/{id} to finish")


def release(job):
    """A requeued job waits (BeginTime, 2 minutes) before Slurm starts it again: let it start now,
    once its first life has ended on the node (started before, Slurm kills it: credential revoked)."""
    in_slurm(lambda: state(job) == "PENDING", what=f"job {job} to be requeued")
    in_slurm(lambda: not processes_of(job), what=f"job {job}'s processes to end")
    time.sleep(1)

    def started():
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
        time.sleep(0.5)
        return state(job) != "PENDING"
    in_slurm(started, what=f"job {job} to start again")


def test_a_sweep_is_one_array_that_runs_after_the_command_has_exited(project):
    out = ok(project.cli("sweep", "four", "code/sweeps/four.yaml", "--backend", "slurm", "--time", "10", env=ENV))
    array = submitted(out)
    assert "(array tasks 0-3)" in out.stdout and f"scancel {array}" in out.stdout
    in_slurm(lambda: any((r := read_json(project.run_dir("four", i) / "statistic.json")) and r["status"] == "running"
                         for i in range(4)), what="a task's run to start")  # as a loaded machine had it
    again = ok(project.cli("sweep", "four", "code/sweeps/four.yaml", "--backend", "slurm", "--time", "10", env=ENV))
    # the array's runs are its own, never waited for as a stopped sweep's; one may finish meanwhile
    done_already = re.search(r"4 combinations, (\d) finished already", again.stdout)
    queued = re.search(r"(\d) queued or running in Slurm already, 0 to submit", again.stdout)
    assert done_already and queued and int(done_already[1]) + int(queued[1]) == 4, again.stdout
    assert "waiting for" not in again.stdout, again.stdout
    entries = read_json(project.root / "__statistic__/slurm/four/submitted.json")  # which job runs what
    assert len(entries) == 4 and {e["job"] for e in entries} == {f"{array}_{k}" for k in range(4)}  # nothing more went in
    assert {json.dumps(e["overrides"], sort_keys=True) for e in entries} == {
        json.dumps({"epochs": 1, "lr": lr, "channels": c}, sort_keys=True) for lr in (0.01, 0.003) for c in (8, 16)}
    done = [finished(project, "four", i) for i in range(4)]
    assert sorted((r["overrides"]["lr"], r["overrides"]["channels"]) for r in done) == \
        [(0.003, 8), (0.003, 16), (0.01, 8), (0.01, 16)]
    assert all(r["overrides"]["epochs"] == 1 and r["hparams"]["lr"] == r["overrides"]["lr"] for r in done)
    assert sorted(r["slurm_job_id"] for r in done) == [f"{array}_{k}" for k in range(4)]
    assert all(r["slurm_job_id"] == f"{array}_{r['slurm_array_task_id']}" and r["requeues"] == 0 for r in done)
    logs = project.run_dir("four", 0) / "slurm.out"
    assert logs.is_symlink() and f"runtag: job {done[0]['slurm_job_id']}: run -f" not in logs.read_text()
    assert f"runtag: job {done[0]['slurm_job_id']}: run --tagged four" in logs.read_text()
    wait_for(lambda: all(state(f"{array}_{k}") in ("COMPLETED", "") for k in range(4)), what="the array to end")
    last = ok(project.cli("sweep", "four", "code/sweeps/four.yaml", "--backend", "slurm", "--time", "10"))
    assert "4 finished already, 0 to run" in last.stdout and "as Slurm job" not in last.stdout
    assert len(read_json(project.root / "__statistic__/slurm/four/submitted.json")) == 4
    assert (project.root / "__statistic__/table/sweep-four.csv").read_text().count("four/") == 4


def test_a_preempted_and_a_requeued_run_end_as_one_never_stopped(project):
    straight = project.cli("run", "-f", "straight", *RUN, env=ENV, check=True) and project.record("straight", 0)
    # --time 60: submitit counts a signal in the last 10 minutes of a job as its time limit, not a preemption
    job = submitted(ok(project.cli("run", "--slurm", "--time", "60", "-f", "pre", *RUN, env={**ENV, "STEP_SLEEP": "0.05"})))
    wait_for(lambda: (r := read_json(project.run_dir("pre", 0) / "statistic.json")) and r["epoch"] >= 1,
             what="pre/0's first epoch")
    for sig in ("TERM", "USR2"):  # submitit's own preemption, as SlurmJob._interrupt() sends it
        ok(subprocess.run(["scancel", f"--signal={sig}", job], capture_output=True, text=True))
    in_slurm(lambda: state(job) == "PENDING", what=f"job {job} to be requeued")
    assert ok(project.cli("expels", "pre")).stdout.splitlines()[1].split()[1] == "pending"
    assert_one_line_mistake(project.cli("con", "pre/0"), f"waits in Slurm job {job}", f"scancel {job}")
    release(job)
    assert project.record("pre", 0)["status"] == "interrupted"
    wait_for(lambda: (r := read_json(project.run_dir("pre", 0) / "statistic.json")) and r["requeues"] == 1
             and r["epoch"] >= 2, what="pre/0 to train again")
    ok(subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True))  # Slurm's own, no warning
    release(job)
    record = finished(project, "pre", 0)
    assert sorted(p.name for p in (project.root / "__result__/pre").iterdir() if p.name.isdigit()) == ["0"]
    assert record["requeues"] == 2 and record["slurm_job_id"] == job
    assert learned(record) == learned(straight)
    log = (project.run_dir("pre", 0) / "log").read_text()
    assert log.count("continuing after epoch") == 2


@pytest.mark.slow
def test_a_preempted_and_a_requeued_step_run_end_as_one_never_stopped(project):
    """The step clock (max_steps, evaluations and log steps inside epochs) through Slurm's
    preemption and requeue: the job goes on from its step checkpoints to the metrics of a run
    never stopped, and its record ends at max_steps."""
    straight = project.cli("run", "-f", "steps", *STEPS, env=ENV, check=True) and project.record("steps", 0)
    assert straight["step"] == 80 and straight["evaluations"] == 6
    job = submitted(ok(project.cli("run", "--slurm", "--time", "60", "-f", "prestep", *STEPS,
                                   env={**ENV, "STEP_SLEEP": "0.1"})))
    at = lambda n: (r := read_json(project.run_dir("prestep", 0) / "statistic.json")) and r.get("step", 0) >= n and r  # noqa: E731
    in_slurm(lambda: at(15), what="prestep/0's first evaluation")  # inside its first epoch (20 steps)
    for sig in ("TERM", "USR2"):
        ok(subprocess.run(["scancel", f"--signal={sig}", job], capture_output=True, text=True))
    in_slurm(lambda: (r := read_json(project.run_dir("prestep", 0) / "statistic.json")) and r["status"] == "interrupted",
             what="prestep/0 to end interrupted")  # before its next life starts and says running
    release(job)
    in_slurm(lambda: (r := at(30)) and r["requeues"] == 1, what="prestep/0 to train again")
    ok(subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True))
    release(job)
    record = finished(project, "prestep", 0)
    assert record["requeues"] == 2 and record["slurm_job_id"] == job
    assert record["step"] == record["max_steps"] == 80 and record["evaluations"] == 6
    assert learned(record) == learned(straight)
    assert curves(project, "prestep") == curves(project, "steps")  # each evaluation's, not only the record's last
    log = (project.run_dir("prestep", 0) / "log").read_text()
    assert log.count("continuing after epoch") == 2


def test_con_and_rerun_as_jobs(project):
    """A run stopped by `scancel` goes on with `con --slurm` (same id, a new job); `rerun --slurm -f`
    repeats it as a new id, to the same metrics."""
    job = submitted(ok(project.cli("run", "--slurm", "--time", "10", "-f", "again", *RUN, env={**ENV, "STEP_SLEEP": "0.05"})))
    wait_for(lambda: (r := read_json(project.run_dir("again", 0) / "statistic.json")) and r["epoch"] >= 1,
             what="again/0's first epoch")
    ok(subprocess.run(["scancel", job], capture_output=True, text=True))
    wait_for(lambda: state(job) not in ("RUNNING", "COMPLETING"), what=f"job {job} to end")
    assert project.record("again", 0)["status"] == "interrupted"
    second = submitted(ok(project.cli("con", "--slurm", "--time", "10", "again", env=ENV)))
    record = finished(project, "again", 0)
    assert second != job and record["slurm_job_id"] == second and record["requeues"] == 0
    assert "continuing after epoch" in (project.run_dir("again", 0) / "log").read_text()
    third = submitted(ok(project.cli("rerun", "--slurm", "--time", "10", "-f", "again/0", env=ENV)))
    rerun = finished(project, "again", 1)
    assert rerun["slurm_job_id"] == third and rerun["rerun_of"] == "again/0" and learned(rerun) == learned(record)


def test_after_waits_through_a_slurm_dependency(project):
    """`run --slurm --after TAG --after-ok`: the job is submitted at once with Slurm's own
    dependency on the jobs of TAG (still pending: no record yet), and starts only after they ended."""
    first = submitted(ok(project.cli("run", "--slurm", "--time", "10", "pretrain", "epochs=2", env={**ENV, "STEP_SLEEP": "0.1"})))
    out = ok(project.cli("run", "--slurm", "--time", "10", "--after", "pretrain", "--after-ok", "finetune", "epochs=1", env=ENV))
    second = submitted(out)
    shown = subprocess.run(["scontrol", "show", "job", second], capture_output=True, text=True).stdout
    assert re.search(rf"Dependency=afterok:{first}\b", shown), shown
    pre, tune = finished(project, "pretrain", 0), finished(project, "finetune", 0)  # tags of their own: the module's `pre` is another test's
    assert tune["slurm_job_id"] == second and pre["slurm_job_id"] == first
    assert datetime.fromisoformat(tune["start"]) >= datetime.fromisoformat(pre["end"])  # not before the first ended
    mistake = project.cli("run", "--slurm", "--time", "10", "--after", "nosuch", "never", "epochs=1", env=ENV)
    assert_one_line_mistake(mistake, "nosuch")
    assert not (project.root / "__result__/never").exists()


def test_a_ddp_run_as_a_job(project):
    """`run --slurm --nproc 2`: torch's launcher inside the job, 2 processes on the node's CPUs."""
    job = submitted(ok(project.cli("run", "--slurm", "--time", "10", "--cpus-per-run", "2", "--nproc", "2",
                                   "ddp", "epochs=1")))
    record = finished(project, "ddp", 0)
    assert record["world_size"] == 2 and record["slurm_job_id"] == job and record["command"].startswith("run --nproc 2 ddp")
    script = (project.root / f"__statistic__/slurm/ddp/{job}_submission.sh").read_text()
    assert "#SBATCH --cpus-per-task=2" in script and "#SBATCH --time=10" in script and "#SBATCH --signal=USR2@120" in script


def test_a_cancelled_task_is_not_shown_running(project):
    """`scancel` of one task of a sweep's array: its run stops at a step and says `interrupted`.
    Processes killed outright (a node lost, the OOM killer) say nothing: the record stays
    `running`, and the listings ask Slurm."""
    sweep_file(project, "long", "default: {epochs: 50}\n---\nlr: [0.01, 0.02]\n")
    array = submitted(ok(project.cli("sweep", "long", "code/sweeps/long.yaml", "--backend", "slurm", "--time", "10",
                                     env={"STEP_SLEEP": "0.05"})))
    for id in (0, 1):
        wait_for(lambda: (r := read_json(project.run_dir("long", id) / "statistic.json")) and r["epoch"] >= 1,
                 what=f"long/{id}'s first epoch")
    assert [row.split()[1] for row in ok(project.cli("expels", "long")).stdout.splitlines()[1:]] == ["running"] * 2
    task = {r["id"]: r["slurm_job_id"] for r in (project.record("long", i) for i in (0, 1))}
    main = project.record("long", 1)["pid"]  # main.py; `run` above it: each leads a process group
    launcher = int(Path(f"/proc/{main}/stat").read_text().split(")")[-1].split()[1])
    for group in (main, launcher):
        os.killpg(group, signal.SIGKILL)
    for job in task.values():
        ok(subprocess.run(["scancel", job], capture_output=True, text=True))
    for job in task.values():
        wait_for(lambda: state(job) not in ("RUNNING", "COMPLETING"), what=f"task {job} to end")
    assert project.record("long", 0)["status"] == "interrupted"
    assert project.record("long", 1)["status"] == "running"  # what the record says; the listings know better
    shown = [row.split()[1] for row in ok(project.cli("expels", "long")).stdout.splitlines()[1:]]
    assert shown[0] == "interrupted" and shown[1] in ("cancelled", "dead") and len(shown) == 2, shown
    ok(project.cli("record", "-l", "gone", "long"))
    ok(project.cli("table", "gone"))
    table = (project.root / "__statistic__/table/gone.csv").read_text()
    assert "long/0,interrupted," in table and f"long/1,{shown[1]}," in table
    assert array == task[0].partition("_")[0]


def test_a_pending_task_is_listed_and_a_cancelled_one_is_not(project):
    sweep_file(project, "wait", "default: {epochs: 1}\n---\nlr: [0.01, 0.02]\n")
    out = ok(project.cli("sweep", "wait", "code/sweeps/wait.yaml", "--backend", "slurm", "--time", "10",
                         "--sbatch", "begin=now+600"))  # held back: nothing starts for 10 minutes
    array = submitted(out)
    rows = ok(project.cli("expels", "wait")).stdout.splitlines()[1:]
    assert len(rows) == 2 and all(row.split()[1] == "pending" and f"(job {array}_" in row for row in rows), rows
    ok(subprocess.run(["scancel", f"{array}_0"], capture_output=True, text=True))
    rows = ok(project.cli("expels", "wait")).stdout.splitlines()[1:]
    assert len(rows) == 1 and f"(job {array}_1)" in rows[0] and "lr=0.02" in rows[0]
    again = ok(project.cli("sweep", "wait", "code/sweeps/wait.yaml", "--backend", "slurm", "--time", "10",
                           "--sbatch", "begin=now+600"))
    assert "1 queued or running in Slurm already, 1 to submit" in again.stdout  # the cancelled one goes in again
    ok(subprocess.run(["scancel", array, submitted(again)], capture_output=True, text=True))


def test_a_search_as_an_array_whose_tasks_ask_and_tell_the_study(project):
    need_module("optuna")
    path = sweep_file(project, "search", "search:\n  method: random\n  trials: 3\n  metric: best/val_acc\n"
                                         "  prune: median\ndefault:\n  epochs: 2\n---\nlr: loguniform(1e-3, 1e-1)\n")
    sweep = ["sweep", "found", path, "--backend", "slurm", "--time", "10"]
    out = ok(project.cli(*sweep))
    assert "0 finished or pruned already, 0 queued or running in Slurm, 3 to submit" in out.stdout
    assert "(array tasks 0-2)" in out.stdout
    again = ok(project.cli(*sweep))
    assert "3 queued or running in Slurm, 0 to submit" in again.stdout and "as Slurm job" not in again.stdout
    ended = lambda i: (r := read_json(project.run_dir("found", i) / "statistic.json")) and \
        r["status"] in ("finished", "pruned") and r  # noqa: E731  (the median pruner may stop one: the task says so)
    done = [in_slurm(lambda: ended(i), what=f"found/{i} to end") for i in range(3)]
    assert len({r["overrides"]["lr"] for r in done}) == 3 and all(1e-3 <= r["overrides"]["lr"] <= 1e-1 for r in done)

    def told():  # a trial's end is op_code 6 with its state: 1 COMPLETE, 2 PRUNED, 3 FAIL (0: RUNNING)
        return [e["state"] for e in journal(project, "found") if e["op_code"] == 6 and e["state"] != 0]
    wait_for(lambda: len(told()) >= 3, what="the tasks to tell the study")
    assert sorted(told()) == sorted(1 if r["status"] == "finished" else 2 for r in done)
    last = ok(project.cli(*sweep))
    assert "3 finished or pruned already, 0 queued or running in Slurm, 0 to submit" in last.stdout
    assert (project.root / "__statistic__/table/sweep-found.csv").read_text().count("found/") == 3


def test_a_preempted_search_task_goes_on_with_its_trial(project):
    need_module("optuna")
    path = sweep_file(project, "one", "search:\n  method: random\n  trials: 1\n  metric: best/val_acc\n"
                                      "default:\n  epochs: 3\n---\nlr: loguniform(1e-3, 1e-1)\n")
    out = ok(project.cli("sweep", "-f", "trial", path, "--backend", "slurm", "--time", "60",
                         env={"STEP_SLEEP": "0.05"}))
    job = submitted(out)  # one trial left: one job, not an array
    wait_for(lambda: (r := read_json(project.run_dir("trial", 0) / "statistic.json")) and r["epoch"] >= 1,
             what="trial/0's first epoch")
    assert project.record("trial", 0)["slurm_job_id"] == job
    for sig in ("TERM", "USR2"):
        ok(subprocess.run(["scancel", f"--signal={sig}", job], capture_output=True, text=True))
    release(job)
    record = finished(project, "trial", 0)
    assert record["requeues"] == 1 and not project.run_dir("trial", 1).exists()
    wait_for(lambda: any(e["op_code"] == 6 and e["state"] != 0 for e in journal(project, "trial")), what="the tell")
    events = journal(project, "trial")
    assert sum(e["op_code"] == 4 for e in events) == 1  # one trial created, told once, with the run's value
    told = [e for e in events if e["op_code"] == 6 and e["state"] != 0]
    assert len(told) == 1 and told[0]["values"] == [record["metrics"]["best/val_acc"]]


@pytest.mark.parametrize("flags, what", [
    (["--time", "10"], "--time without --slurm"),
    (["--slurm", "--time", "ten"], "--time 'ten' is not a Slurm time"),
    (["--slurm", "--mem", "lots"], "--mem 'lots'"),
    (["--slurm", "--sbatch", "account"], "--sbatch 'account' is not KEY=VALUE"),
    (["--slurm", "--node-rank", "1", "--nnodes", "2", "--master", "h:1"], "--node-rank or --master with --slurm"),
    (["--slurm", "--partition", "nosuch"], "sinfo shows no time limit for partition nosuch"),
])
def test_a_wrong_slurm_flag_is_one_line_and_nothing_is_written(project, flags, what):
    out = project.cli("run", *flags, "flags")
    assert_one_line_mistake(out, what)
    assert not (project.root / "__result__/flags").exists() and "flags" not in project.git("tag")


def test_a_sweep_refuses_local_workers_with_slurm(project):
    out = project.cli("sweep", "w", "code/sweeps/four.yaml", "--backend", "slurm", "--workers", "2")
    assert_one_line_mistake(out, "--workers with --backend slurm")
    out = project.cli("sweep", "w", "code/sweeps/four.yaml", "--array-parallelism", "2")
    assert_one_line_mistake(out, "--array-parallelism without --backend slurm")


def test_no_sbatch_or_no_submitit_is_one_line_and_nothing_is_written(project, tmp_path):
    bare = tmp_path / "bin"  # git, but no Slurm commands
    bare.mkdir()
    (bare / "git").symlink_to(shutil.which("git"))
    out = project.cli("run", "--slurm", "nosbatch", env={"PATH": str(bare)})
    assert_one_line_mistake(out, "sbatch is not on PATH")
    # submitit missing: this interpreter with the import refused, as Python refuses a package it does not have
    blocked = f"import runpy, sys; sys.modules['submitit'] = None; sys.argv = {['cli.py', 'sweep', 'nosub', 'code/sweeps/four.yaml', '--backend', 'slurm']!r}; runpy.run_path('code/utils/cli.py', run_name='__main__')"
    out = subprocess.run([sys.executable, "-c", blocked], cwd=project.root, capture_output=True, text=True,
                         env=project.env())
    assert_one_line_mistake(out, "submitit is not installed", "requirements-slurm.txt")
    assert not any((project.root / "__result__" / t).exists() for t in ("nosbatch", "nosub"))
    assert not {"nosbatch", "nosub"} & set(project.git("tag").split())
