"""sweep: one run per combination of a sweep file, in parallel on CPU workers, GPUs or Ray.

Every run is a plain `python code/utils/cli.py run <tag> key=value ...` subprocess, so every rule
of `run` holds for it (tag on HEAD, clean code/, atomic ids); the sweep decides what to start
where, and reports. A combination with a finished run under the tag is not run again: repeating
the command resumes an interrupted sweep. The file format: utils/sweep_file.py.
"""
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from utils import gitrepo, overrides, paths, runs, sweep_file
from utils.errors import UserError

FIRST_LINE = re.compile(r"runtag: (\S+/\d+) ")  # `run` prints `runtag: <tag>/<id> at <commit> ...` first
POLL_S = 0.2


def add_sweep(p):
    p.add_argument("-f", action="store_true", help="fixed seed for every run: the value in code/seed")
    p.add_argument("--workers", type=int, metavar="N", help="runs at once without GPUs (default 1)")
    p.add_argument("--gpus", metavar="IDS", help="GPU ids, e.g. 0,1,2,3: each run sees one as CUDA_VISIBLE_DEVICES")
    p.add_argument("--per-gpu", type=int, metavar="K", help="runs at once on each GPU (default 1)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the combinations that would run; run nothing (any file: uncommitted, outside code/)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="ray: one Ray task per run on a Ray cluster (pip install -r code/requirements-ray.txt)")
    p.add_argument("--address", metavar="ADDR",
                   help="ray: the cluster's head, e.g. 10.0.0.1:6379 (default: a running cluster, else a "
                        "local instance; `local`: a new local instance with --workers CPUs)")
    p.add_argument("tag", help="the experiment's name: every run of the sweep is a run of this tag")
    p.add_argument("file", metavar="FILE.yaml",
                   help="the sweep file, committed under code/, e.g. code/sweeps/lr.yaml (--dry-run: any file)")


@dataclass
class Job:
    """One combination to run, and what became of it."""
    overrides: dict
    name: str = None      # tag/id, once the run has printed it
    rc: int = None        # exit status of `run`
    seconds: float = 0.0  # from start to exit, as the pool saw it
    why: str = ""         # the last line of the run's stderr, when it failed


def sweep(args):
    gpus = check_flags(args)
    combinations = sweep_file.load(args.file, overrides.load_config())
    if args.dry_run:  # writes nothing, so any file may be tried first, committed or not
        gitrepo.check_tag_name(args.tag)  # the tag names a folder that is read
        for combination in to_run(args.tag, combinations):
            print("  " + sweep_file.argv(combination))
        return 0
    repo, head = check_git(args.tag, args.file)
    jobs = [Job(c) for c in to_run(args.tag, combinations)]
    stopped = False
    if jobs:
        pool = RayPool(args, gpus) if args.backend == "ray" else LocalPool(slots(args, gpus))
        gitrepo.ensure_tag(repo, args.tag, head)  # here, once: concurrent runs would race to create it
        stopped = drive(pool, jobs, lambda combination: command(args, combination))
    failed = [job for job in jobs if job.rc not in (None, 0)]  # None: never started, the sweep was stopped
    summarise(args.tag, combinations, failed)
    return 130 if stopped else 1 if failed else 0


def to_run(tag, combinations):
    """The combinations without a finished run under the tag, announced in one line."""
    finished = finished_runs(tag)
    todo = [c for c in combinations if sweep_file.canonical(c) not in finished]
    print(f"runtag: sweep {tag}: {len(combinations)} combinations, "
          f"{len(combinations) - len(todo)} finished already, {len(todo)} to run", flush=True)
    return todo


def check_flags(args):
    """The GPU ids, after every flag combination is checked: a mistake is one line, before anything."""
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}", "give a number >= 1")
    if args.per_gpu is not None and args.per_gpu < 1:
        raise UserError(f"--per-gpu {args.per_gpu}", "give a number >= 1")
    if args.per_gpu is not None and not args.gpus:
        raise UserError("--per-gpu without --gpus", "name the GPUs too, e.g. --gpus 0,1 --per-gpu 2")
    if args.gpus and args.workers is not None and args.backend == "local":
        raise UserError("--workers with --gpus", "choose one: with --gpus there are (GPUs x --per-gpu) workers")
    if args.address and args.backend != "ray":
        raise UserError("--address without --backend ray", "add --backend ray, or leave --address out")
    if args.backend == "ray" and args.workers is not None and args.address != "local":
        raise UserError("--workers with --backend ray on a cluster", "the cluster's CPUs decide; "
                        "--workers only sizes a new local instance (--address local)")
    gpus = [g.strip() for g in args.gpus.split(",")] if args.gpus else []
    if any(not g for g in gpus):
        raise UserError(f"--gpus {args.gpus!r}", "give comma-separated ids, e.g. --gpus 0,1,2,3")
    if args.backend == "ray":
        import_ray()
        if args.address != "local":
            reachable(args.address)
    return gpus


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray, which is not installed",
                        "pip install -r code/requirements-ray.txt") from None
    return ray


def check_git(tag, file):
    """`run`'s rules, checked once up front: every run would otherwise fail with the same line."""
    repo = gitrepo.open_repo()
    gitrepo.check_tag_name(tag)
    gitrepo.require_identity(repo)
    check_committed(repo, file)
    dirty = gitrepo.dirty_code(repo)
    if dirty:
        raise UserError(f"code/ has uncommitted changes: {' '.join(dirty[:5])}{' ...' if len(dirty) > 5 else ''}",
                        "commit them (the sweep file too): every run of a sweep is the tagged commit")
    head = repo.head.commit.hexsha
    marked = gitrepo.tag_commit(repo, tag)
    if marked and marked != head:
        raise UserError(f"tag {tag!r} already marks commit {marked[:10]}, not HEAD",
                        "check that commit out to resume its sweep, or choose a new tag")
    return repo, head


def check_committed(repo, file):
    """The sweep file shapes the runs, so the tagged commit must hold it as it is: else the sweep
    could not be repeated from the tag. `run` checks code/ only: a file elsewhere would pass."""
    code, path = paths.root() / "code", Path(file).resolve()
    if not path.is_relative_to(code):
        raise UserError(f"sweep file {file} is outside code/, so the tag would not hold it",
                        f"move it under code/ (e.g. code/sweeps/{path.name}) and commit it; "
                        "--dry-run reads it where it is")
    name = path.relative_to(paths.root()).as_posix()
    state = repo.git.status("--porcelain", "--ignored", "--untracked-files=all", "--", name)[:2]
    if state:  # ?? untracked, !! ignored, anything else changed since HEAD
        problem = {"??": "is untracked", "!!": "is ignored by git"}.get(state, "has uncommitted changes")
        add = "git add -f" if state == "!!" else "git add"
        raise UserError(f"sweep file {name} {problem}, so the tag would not hold it",
                        f"commit it first ({add} {name} && git commit); --dry-run reads it uncommitted")


def finished_runs(tag):
    """{canonical overrides: [tag/id, ...]} of the tag's finished runs, oldest first."""
    found = {}
    for id in runs.ids(tag):
        record = runs.read(paths.run_dir(tag, id))
        if record and record.get("status") == "finished":
            found.setdefault(sweep_file.canonical(record.get("overrides") or {}), []).append(f"{tag}/{id}")
    return found


def command(args, combination):
    cli = paths.root() / "code" / "utils" / "cli.py"
    return [sys.executable, str(cli), "run", *(["-f"] if args.f else []), args.tag, *sweep_file.words(combination)]


def slots(args, gpus):
    """One environment per worker: --per-gpu workers on each GPU, interleaved so the first runs
    spread over the GPUs; else --workers workers. Unless OMP_NUM_THREADS is set, each worker's
    runs get an equal share of the cores: torch's default, all of them for each run, makes
    parallel runs fight over the cores (2 runs on 2 cores: 2.6x slower each, measured)."""
    devices = [g for _ in range(args.per_gpu or 1) for g in gpus] or [None] * (args.workers or 1)
    threads = str(max(1, len(os.sched_getaffinity(0)) // len(devices)))
    envs = []
    for device in devices:
        env = {"OMP_NUM_THREADS": threads, **os.environ}
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        envs.append(env)
    return envs


class Process:
    """One `run` subprocess. Its stdout and stderr go to temporary files, not to the sweep's
    terminal: the run folder's `log` keeps its stdout, and a failure's last line is reported."""

    def __init__(self, cmd, env, cwd):
        self.out, self.err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        self.begin = time.perf_counter()
        # Its own process group: a terminal's Ctrl-C reaches the sweep alone, which forwards it
        # once. Twice (terminal and sweep) could interrupt the run's own clean-up.
        self.child = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                      stdout=self.out, stderr=self.err, process_group=0)

    def follow(self, job):
        """Yield "start" once the run has printed its name, then "end" once it has exited."""
        rc = None
        while rc is None:
            try:
                rc = self.child.wait(timeout=POLL_S)  # returns within ~50 ms of the exit
            except subprocess.TimeoutExpired:
                pass
            if job.name is None and (name := self.name()):
                job.name = name
                yield "start"
        job.rc = rc if rc >= 0 else 128 - rc
        job.seconds = time.perf_counter() - self.begin
        job.why = self.last_error() if job.rc else ""
        self.out.close()
        self.err.close()
        yield "end"

    def name(self):
        self.out.seek(0)
        match = FIRST_LINE.match(self.out.readline())
        return match and match.group(1)

    def last_error(self):
        self.err.seek(0)
        lines = [line.strip() for line in self.err.read().replace("\r", "\n").splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def interrupt(self):
        """SIGINT to the run's group: `run` ignores it, main.py ends the run as `interrupted`."""
        try:
            os.killpg(self.child.pid, signal.SIGINT)
        except ProcessLookupError:
            pass


class LocalPool:
    """Workers, one thread each, pull the jobs in order and run one subprocess at a time."""

    def __init__(self, envs):
        self.envs = envs
        self.lock = threading.Lock()
        self.running = set()
        self.stopping = False
        self.threads = []

    def start(self, jobs, cmd, events):
        todo = queue.SimpleQueue()
        for job in jobs:
            todo.put(job)
        self.threads = [threading.Thread(target=self.work, args=(env, todo, cmd, events), daemon=True)
                        for env in self.envs]
        for thread in self.threads:
            thread.start()

    def work(self, env, todo, cmd, events):
        while True:
            with self.lock:  # no run starts after stop() has interrupted the others
                if self.stopping:
                    return
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    process = Process(cmd(job.overrides), env, paths.root())
                except OSError as err:  # no run: say so, and go on with the next
                    job.rc, job.why = 1, str(err)
                    events.put(("end", job))
                    continue
                self.running.add(process)
            for kind in process.follow(job):
                events.put((kind, job))
            with self.lock:
                self.running.discard(process)

    def alive(self):
        return any(thread.is_alive() for thread in self.threads)

    def stop(self):
        with self.lock:
            self.stopping = True
            for process in self.running:
                process.interrupt()


def ray_task(cmd, cwd):
    """On a Ray node: the run subprocess, as the local pool starts it; yields its events."""
    # Ray's workers block SIGINT, and a child inherits the mask: it would never see a Ctrl-C.
    blocked = signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        process = Process(cmd, dict(os.environ), cwd)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    job = Job({})
    try:
        for kind in process.follow(job):
            yield kind, job.name, job.rc, job.seconds, job.why
    except KeyboardInterrupt:  # ray.cancel: the sweep is stopping; the run ends as `interrupted`
        process.interrupt()
        process.child.wait()
        raise


def reachable(address):
    """A HOST:PORT with nothing listening is one line, not Ray's retries without end."""
    host, _, port = (address or "").rpartition(":")
    if not (host and port.isdigit()) or "/" in address:
        return  # Ray's default, `auto`, `ray://...`: Ray's own checks
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as err:
        raise UserError(f"no Ray cluster answers at {address}: {err.strerror or err}",
                        f"start one there (`ray start --head --port {port}`) or check the address") from None


class RayPool:
    """One Ray task per job, all submitted at once: the cluster's free CPUs and GPUs schedule them."""

    def __init__(self, args, gpus):
        self.ray = import_ray()
        # The task is this module's function: the workers import it from code/ on the shared disk.
        options = dict(logging_level=logging.WARNING, log_to_driver=False,
                       runtime_env={"env_vars": {"PYTHONPATH": str(paths.CODE)}})
        if args.address == "local":
            options.update(address="local", num_cpus=args.workers, include_dashboard=False)
        else:
            options.update(address=args.address)
        try:
            self.ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise UserError(f"cannot start or reach Ray{' at ' + args.address if args.address else ''}: "
                            f"{' '.join(str(err).split())[:200]}",
                            "start the cluster first (`ray start --head`); a cluster with token authentication "
                            "needs RAY_AUTH_MODE=token here too") from None
        if gpus and not self.ray.cluster_resources().get("GPU"):
            self.ray.shutdown()
            raise UserError("--gpus, but the Ray cluster has no GPU", "leave --gpus out, or add nodes with GPUs")
        self.task = self.ray.remote(ray_task).options(
            num_cpus=1, num_gpus=1 / (args.per_gpu or 1) if gpus else 0, max_retries=0)
        self.stopping = False
        self.thread = None

    def start(self, jobs, cmd, events):
        self.thread = threading.Thread(target=self.collect, args=(jobs, cmd, events), daemon=True)
        self.thread.start()

    def collect(self, jobs, cmd, events):
        try:
            tasks = {self.task.remote(cmd(job.overrides), str(paths.root())): job for job in jobs}
            pending, cancelled = list(tasks), False
            while pending:
                if self.stopping and not cancelled:
                    cancelled = True
                    for task in pending:
                        self.ray.cancel(task)  # the task interrupts its run and waits for it
                ready, pending = self.ray.wait(pending, num_returns=1, timeout=POLL_S)
                for task in ready:
                    kind = self.next_event(task, tasks[task])
                    if kind:
                        events.put((kind, tasks[task]))
                    if kind == "start":
                        pending.append(task)  # its "end" is to come
        finally:
            self.ray.shutdown()

    def next_event(self, task, job):
        """The task's next event, "start" or "end", written into its job; None if it has none."""
        try:
            kind, job.name, job.rc, job.seconds, job.why = self.ray.get(next(task))
            return kind
        except StopIteration:
            return None
        except self.ray.exceptions.TaskCancelledError:  # the sweep stopped: interrupted, or never started
            job.rc = 130 if job.name else None
            return "end" if job.name else None
        except Exception as err:  # the task itself failed, or its node was lost
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            job.rc, job.why = 1, lines[-1] if lines else type(err).__name__
            return "end"

    def alive(self):
        return self.thread.is_alive()

    def stop(self):
        self.stopping = True


def drive(pool, jobs, cmd):
    """Run the jobs on the pool: a line per start and end, a progress bar. Ctrl-C or SIGTERM stop
    the sweep: no new run starts, the running ones are interrupted and waited for. True if so."""
    from tqdm import tqdm

    events, signalled = queue.Queue(), []
    previous = {s: signal.signal(s, lambda signum, frame: signalled.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    bar = tqdm(total=len(jobs), unit="run", desc="sweep", dynamic_ncols=True)
    try:
        pool.start(jobs, cmd, events)
        stopping = False
        while pool.alive() or not events.empty():
            if signalled and not stopping:
                stopping = True
                pool.stop()
                say(bar, "STOP  the running runs are interrupted; waiting for them to end")
            try:
                kind, job = events.get(timeout=POLL_S)
            except queue.Empty:
                continue
            say(bar, line(kind, job))
            if kind == "end":
                bar.update()
    finally:
        bar.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return bool(signalled)


def line(kind, job):
    text = f"{job.name or '(no run)'}  {sweep_file.argv(job.overrides)}"
    if kind == "start":
        return f"START {text}"
    if job.rc == 0:
        return f"DONE  {text}  ({job.seconds:.1f} s)"
    status = status_of(job.name)
    return f"FAIL  {text}  ({status + ', ' if status else ''}exit {job.rc}{': ' + job.why if job.why else ''})"


def status_of(name):
    if not name:
        return None
    tag, _, id = name.partition("/")
    record = runs.read(paths.run_dir(tag, id))
    return record and record.get("status")


def say(bar, text):
    bar.write(text, file=sys.stdout)
    sys.stdout.flush()


def summarise(tag, combinations, failed):
    """The sweep's finished runs into list sweep-<tag>, and its table, as `table` builds it."""
    from utils.statistic import record, table

    found = finished_runs(tag)
    names = [found[key][-1] for key in map(sweep_file.canonical, combinations) if key in found]
    print(f"runtag: sweep {tag}: {len(names)} of {len(combinations)} combinations finished"
          + (f", {len(failed)} failed or interrupted now" if failed else ""), flush=True)
    if names:
        record.add(list_name(tag), names)
        table.build(list_name(tag))


def list_name(tag):
    """sweep-<tag>, with the characters a tag may have but a list name may not (.) as _."""
    return "sweep-" + re.sub(r"[^A-Za-z0-9_+-]", "_", tag)
