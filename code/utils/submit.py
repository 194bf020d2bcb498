"""submit: runs as Slurm jobs, through submitit (code/requirements-slurm.txt, imported only here
and only when a job is submitted or runs). `run|con|rerun --slurm` submit one job, `sweep
--backend slurm` one job array (utils/sweep/slurmarray.py); then the command exits.

A job runs one `cli.py` command (`run --tagged ...`: the commit the tag marks, whatever the
working tree holds by the time the job starts). The run says its name `tag/id` into the job's
name file, so a job Slurm starts again (preempted, `scontrol requeue`, a time limit that submitit
requeues) continues that run with `con` instead of starting another. When Slurm signals the job
(submitit's USR2, `--signal` seconds before the end), the run is stopped as Ctrl-C stops it: it
ends `interrupted` after a checkpoint, and submitit requeues the job.

Everything lands in __statistic__/slurm/<tag>/: submitted.json (each job id and what it runs),
submitit's scripts and pickles, the logs <job>_0_log.out|err (linked from the run folder as
slurm.out|err), and <job>.name.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from utils import atomic, checkpoints, paths, process, runs, slurm
from utils.errors import UserError
from utils.jobs import folder, log, name_file, queued, started, submitted  # noqa: F401 (submit.queued ...: as before)

OPTIONS = ("partition", "time", "gpus_per_run", "cpus_per_run", "mem", "max_timeouts", "sbatch")
TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")  # Slurm's: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
POLL_S = 0.5
STOPPED = (130, 143)  # `run` stopped by SIGINT or SIGTERM: the run ended `interrupted`
LINGER_S = 60  # after Slurm's SIGTERM, how long a job waits for its requeue signal before it ends


def add_options(p, array=False):
    """The resource flags, the same for `run --slurm` and `sweep --backend slurm` (each given: one run's)."""
    p.add_argument("--partition", metavar="P", help="Slurm partition (default: the cluster's)")
    p.add_argument("--time", metavar="T", help="time limit of each job, as sbatch takes it: 4:00:00, 1-12:00:00, "
                                               "90 (minutes). Default: the partition's limit")
    p.add_argument("--gpus-per-run", type=int, metavar="N", help="GPUs of each run (per node with --nnodes)")
    p.add_argument("--cpus-per-run", type=int, metavar="N", help="CPU cores of each run")
    p.add_argument("--mem", metavar="SIZE", help="memory of each run, as sbatch takes it: 32G, 4000M")
    p.add_argument("--max-timeouts", type=int, metavar="N",
                   help="requeues after hitting the time limit (default 3); preemptions are always requeued")
    p.add_argument("--sbatch", action="append", metavar="KEY=VALUE",
                   help="any other sbatch option, e.g. --sbatch account=lab --sbatch qos=high (repeatable)")
    if array:
        p.add_argument("--array-parallelism", type=int, metavar="K", help="runs of the array at once (default: all)")


def check(args):
    """The flags as submitit's parameters, and submitit and sbatch are there: each a one-line mistake."""
    if not shutil.which("sbatch"):
        raise UserError("sbatch is not on PATH, so nothing can be submitted to Slurm",
                        "run this on the cluster's login node, or drop --slurm / --backend slurm")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UserError("submitit is not installed, and Slurm jobs go through it",
                        "pip install -r code/requirements-slurm.txt") from None
    for flag, value in [("--gpus-per-run", args.gpus_per_run), ("--cpus-per-run", args.cpus_per_run),
                        ("--array-parallelism", getattr(args, "array_parallelism", None))]:
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}", "give a number >= 1")
    if args.max_timeouts is not None and args.max_timeouts < 0:
        raise UserError(f"--max-timeouts {args.max_timeouts}", "give a number >= 0")
    if args.mem and not re.fullmatch(r"\d+[KMGT]?B?", args.mem, re.IGNORECASE):
        raise UserError(f"--mem {args.mem!r}", "give a size as sbatch takes it, e.g. 32G or 4000M")
    return parameters(args)


def parameters(args):
    nodes = getattr(args, "nnodes", 1) or 1
    params = {"time": minutes(args.time, "--time") if args.time else partition_limit(args.partition),
              "nodes": nodes, "ntasks_per_node": 1, "signal_delay_s": 120,
              "setup": [f"export PYTHONPATH={paths.CODE}${{PYTHONPATH:+:$PYTHONPATH}}"],  # to unpickle Task
              "additional_parameters": {"chdir": str(paths.root()), **extra(args.sbatch or [])}}
    for key, value in [("partition", args.partition), ("gpus_per_node", args.gpus_per_run),
                       ("cpus_per_task", args.cpus_per_run), ("mem", args.mem),
                       ("array_parallelism", getattr(args, "array_parallelism", None))]:
        if value is not None:
            params[key] = value
    return params


def extra(pairs):
    found = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not (eq and re.fullmatch(r"[a-z][a-z0-9-]*", key.strip("-"))):
            raise UserError(f"--sbatch {pair!r} is not KEY=VALUE", "give an sbatch option without its dashes, "
                                                                  "e.g. --sbatch account=lab")
        found[key.strip("-")] = value
    return found


def minutes(text, what):
    """Slurm's time formats as whole minutes (rounded up), as submitit takes them."""
    match = TIME.fullmatch(text.strip())
    if not match:
        raise UserError(f"{what} {text!r} is not a Slurm time", "give e.g. 90 (minutes), 4:00:00 or 1-12:00:00")
    days, a, b, c = (int(g) if g else None for g in match.groups())
    if days is not None:  # D-H, D-H:M, D-H:M:S
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # H:M:S
        seconds = a * 3600 + b * 60 + c
    else:  # M or M:S
        seconds = a * 60 + (b or 0)
    if seconds <= 0:
        raise UserError(f"{what} {text!r} is no time at all", "give a positive time limit, e.g. 4:00:00")
    return -(-seconds // 60)


def partition_limit(partition):
    """The partition's time limit when --time is not given: submitit needs one to tell a time
    limit from a preemption. An unlimited partition counts as 30 days."""
    out = slurm.call(["sinfo", "-h", "-o", "%P %l", *(["-p", partition] if partition else [])]) or ""
    limits = [line.split() for line in out.splitlines() if len(line.split()) == 2]
    chosen = [lim for name, lim in limits if partition or name.endswith("*")] or [lim for _, lim in limits]
    if not chosen:
        raise UserError(f"sinfo shows no time limit for {'partition ' + partition if partition else 'the default partition'}",
                        "give --time, e.g. --time 4:00:00")
    return 30 * 24 * 60 if chosen[0] in ("infinite", "UNLIMITED") else minutes(chosen[0], "the partition's limit")


# The folder of a tag's jobs, and what was submitted there: utils/jobs.py reads them.

def remember(tag, entries):
    with atomic.locked(folder(tag)):
        atomic.write_json(folder(tag) / "submitted.json", submitted(tag) + entries)


# Submitting.

def executor(tag, params, max_timeouts):
    import submitit

    folder(tag).mkdir(parents=True, exist_ok=True)
    ex = submitit.SlurmExecutor(folder=folder(tag), max_num_timeout=3 if max_timeouts is None else max_timeouts)
    ex.update_parameters(job_name=f"runtag-{tag}", **params)
    return ex


def submit(tag, params, max_timeouts, argvs, name=None, notes=None, tasks=None):
    """One job per argv (a job array when several); their ids, after writing them down with
    `notes` (a dict per argv: a sweep's overrides). `tasks`: what the jobs run, if not Tasks of argvs."""
    ex = executor(tag, params, max_timeouts)
    tasks = tasks or [Task(paths.root(), argv, tag, name) for argv in argvs]
    try:
        jobs = ex.submit_array(tasks) if len(tasks) > 1 else [ex.submit(tasks[0])]
    except Exception as err:  # sbatch refused: its own message, one line
        raise UserError(f"sbatch refused the job: {' '.join(str(err).split())[:300]}",
                        "check --partition, --time and the --sbatch options") from None
    notes = notes or [{}] * len(argvs)
    remember(tag, [{"job": job.job_id, "argv": argv, **note, "submitted": runs.now()}
                   for job, argv, note in zip(jobs, argvs, notes)])
    if name:
        atomic.write_text(name_file(tag, jobs[0].job_id), f"{name}\n")
    return [job.job_id for job in jobs]


def announce(tag, jobs, what):
    array = jobs[0].partition("_")[0]
    print(f"runtag: submitted {what} as Slurm job {array if len(jobs) > 1 else jobs[0]}"
          f"{f' (array tasks 0-{len(jobs) - 1})' if len(jobs) > 1 else ''}", flush=True)
    print(f"runtag: watch: squeue -j {array} · expels {tag} · logs in "
          f"{folder(tag).relative_to(paths.root())}/; stop: scancel {array}", flush=True)


# In the job.

class Task:
    """What one Slurm job does: the `cli.py` command of its run, started and followed. submitit
    pickles it, calls it in the job, and calls .checkpoint() on Slurm's signal."""

    def __init__(self, root, argv, tag, name=None):
        self.root, self.argv, self.tag, self.name = str(root), list(argv), tag, name

    def __call__(self):
        job = slurm.job_id()
        argv = self.command(job)
        env = {**os.environ, "RUNTAG_NAME_FILE": str(name_file(self.tag, job))}
        env.pop("PYTHONPATH", None)  # only for submitit to unpickle this; the run's own imports are its checkout's
        print(f"runtag: job {job}: {' '.join(argv + nodes())}", flush=True)
        cli = Path(self.root) / "code" / "utils" / "cli.py"
        self.group = process.Group([sys.executable, str(cli), *argv, *nodes()], cwd=self.root, env=env,
                                   preexec_fn=ignore_usr2)
        self.rc, self.done = None, threading.Event()
        threading.Thread(target=self.wait, daemon=True).start()
        linked = False
        while not self.done.wait(POLL_S):  # the signal handler may run in between: it only reads the flag
            linked = linked or link_logs(self.tag, job)
            self.poll(job)
        link_logs(self.tag, job)
        self.rc = self.ended(job, self.rc)
        if self.rc in STOPPED:  # Slurm's SIGTERM (preemption, scancel): its next word, USR2 or SIGKILL, decides
            deadline = time.monotonic() + LINGER_S
            while time.monotonic() < deadline:
                time.sleep(POLL_S)
        if self.rc:
            raise RuntimeError(f"`{' '.join(argv)}` exited with status {self.rc}: see the run's log")
        return self.rc

    def command(self, job):
        """The `cli.py` words to run now: the run this job began, if Slurm started it again."""
        name = self.name or started(self.tag, job)
        return ["continue", "--force", name] if name else self.argv

    def poll(self, job):
        """Called while the run runs (a search's task watches it here)."""

    def ended(self, job, rc):
        """The exit status the job goes on with (a search's task tells its study here)."""
        return rc

    def again(self):
        """A copy of this task to pickle for the requeue: no process, no thread."""
        return Task(self.root, self.argv, self.tag, self.name)

    def wait(self):
        self.rc = self.group.wait()
        self.done.set()

    def checkpoint(self):
        """Slurm's signal (preemption, or the time limit near): stop the run as Ctrl-C does, so it
        ends `interrupted` after a checkpoint, then let submitit requeue this job to continue it."""
        import submitit

        group = getattr(self, "group", None)
        if group is not None:
            group.signal(signal.SIGINT)
            while not self.done.is_set():
                time.sleep(POLL_S / 5)
            if self.rc == 0:  # it finished meanwhile: nothing to continue
                return None
        return submitit.helpers.DelayedSubmission(self.again())


def ignore_usr2():
    """Slurm sends its --signal to every process of the job: only submitit's should act on it."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def nodes():
    """The multi-node flags of `run`/`con` for this node of the job; [] on one node."""
    count = int(os.environ.get("SLURM_JOB_NUM_NODES") or 1)
    if count < 2:
        return []
    hosts = subprocess.run(["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]],
                           capture_output=True, text=True, check=True).stdout.split()
    port = 20000 + int(os.environ["SLURM_JOB_ID"]) % 20000
    return ["--nnodes", str(count), "--node-rank", os.environ.get("SLURM_NODEID", "0"), "--master", f"{hosts[0]}:{port}"]


def link_logs(tag, job):
    """slurm.out and slurm.err in the run folder, relative links to this job's logs; True once made."""
    name = started(tag, job)
    if not name:
        return False
    run = runs.Run.parse(name)
    for suffix, link in runs.SLURM_LOGS.items():
        target = os.path.relpath(log(tag, job, suffix), run.dir)
        where = run.dir / link
        if not where.is_symlink() or os.readlink(where) != target:
            checkpoints.point(where, target)
    return True
