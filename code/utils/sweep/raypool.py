"""raypool: the backend that runs each run of a sweep as a Ray task, on a Ray cluster or a new
local instance (--address). Ray is imported only when this backend is chosen. The backend
interface: utils/sweep/__init__.py."""
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path

from utils import paths
from utils.errors import UserError
from utils.sweep.job import POLL_S, Child, Job, last_line

HELP = "one Ray task per run on a Ray cluster (pip install -r code/requirements-ray.txt)"
OPTIONS = ("address",)


def add_options(p):
    p.add_argument("--address", metavar="ADDR",
                   help="ray: the cluster's head, e.g. 10.0.0.1:6379 (default: a running cluster, else a "
                        "local instance; `local`: a new local instance with --workers CPUs)")


def check(args, gpus):
    if args.workers is not None and args.address != "local":
        raise UserError("--workers with --backend ray on a cluster", "the cluster's CPUs decide; "
                        "--workers only sizes a new local instance (--address local)")
    import_ray()
    if args.address != "local":
        reachable(args.address)


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray, which is not installed",
                        "pip install -r code/requirements-ray.txt") from None
    return ray


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


def ray_task(cmd, cwd, name=None, stops=()):
    """On a Ray node: the run subprocess, as the local pool starts it; yields its events.
    `name`: the run it continues, if it does (`con` does not say it, being told it). `stops`:
    files on the shared disk whose existence tells the run to stop (the sweep's, this job's):
    ray.cancel() is not relied on, since its interrupt is lost on a task that is waiting in a
    system call (ray-project/ray#32954), which is where a task following its run spends its time."""
    if any(map(os.path.exists, stops)):
        return  # the sweep stopped before this task started: no run
    # Ray's workers block SIGINT, and a child inherits the mask: it would never see a Ctrl-C.
    blocked = signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        child = Child(cmd, dict(os.environ), cwd)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    job = Job({}, name=name)
    try:
        for kind in child.follow(job, stop=lambda: any(map(os.path.exists, stops))):
            yield kind, job.name, job.rc, job.seconds, job.why
    except KeyboardInterrupt:  # ray.cancel by someone else: the run ends as `interrupted`
        child.interrupt()
        child.wait()
        raise


def connect(args, gpus):
    """Ray, started or reached as --address says (with --workers CPUs if local); one line if not."""
    ray = import_ray()
    # The task is a function of code/utils: the workers import it from code/ on the shared disk.
    options = dict(logging_level=logging.WARNING, log_to_driver=False,
                   runtime_env={"env_vars": {"PYTHONPATH": str(paths.CODE)}})
    if args.address == "local":
        options.update(address="local", num_cpus=args.workers, include_dashboard=False)
    else:
        options.update(address=args.address)
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise UserError(f"cannot start or reach Ray{' at ' + args.address if args.address else ''}: "
                        f"{' '.join(str(err).split())[:200]}",
                        "start the cluster first (`ray start --head`); a cluster with token authentication "
                        "needs RAY_AUTH_MODE=token here too") from None
    if gpus and not ray.cluster_resources().get("GPU"):
        ray.shutdown()
        raise UserError("--gpus, but the Ray cluster has no GPU", "leave --gpus out, or add nodes with GPUs")
    return ray


def remote(ray, function, args, gpus):
    """function as a Ray task of one CPU, and of one GPU's 1/--per-gpu with --gpus; never retried."""
    return ray.remote(function).options(num_cpus=1, num_gpus=1 / (args.per_gpu or 1) if gpus else 0, max_retries=0)


def stops_folder():
    """A new folder on the shared disk for the stop files that tasks watch (see ray_task)."""
    folder = paths.statistic() / "ray"
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".stops-", dir=folder))


class Pool:
    """One Ray task per job, all submitted at once: the cluster's free CPUs and GPUs schedule them."""

    def __init__(self, args, gpus):
        self.ray = connect(args, gpus)
        self.task = remote(self.ray, ray_task, args, gpus)
        self.stopping = False
        self.thread = None
        self.numbers = {}  # id(job): its number, which names its stop file
        self.stops = stops_folder()  # see ray_task; removed at the end

    def start(self, jobs, cmd, events):
        self.thread = threading.Thread(target=self.collect, args=(jobs, cmd, events), daemon=True)
        self.thread.start()

    def collect(self, jobs, cmd, events):
        """A list of jobs goes to the cluster at once; a search's trials one per free CPU, asked
        as runs end (its next trial depends on them)."""
        limit = None if isinstance(jobs, list) else max(int(self.ray.cluster_resources().get("CPU", 1)), 1)
        todo, self.tasks = iter(jobs), {}
        try:
            pending = []
            while True:
                while not self.stopping and (limit is None or len(self.tasks) < limit):
                    job = next(todo, None)
                    if job is None:
                        break
                    stops = (str(self.stops / "sweep"), str(self.stops / str(len(self.numbers))))
                    self.numbers[id(job)] = len(self.numbers)
                    task = self.task.remote(cmd(job), str(paths.root()), job.name if job.resume else None, stops)
                    self.tasks[task] = job
                    pending.append(task)
                if not pending:
                    break
                ready, pending = self.ray.wait(pending, num_returns=1, timeout=POLL_S)
                for task in ready:
                    job = self.tasks[task]
                    kind = self.next_event(task, job)
                    if kind:
                        events.put((kind, job))
                    if kind == "start":
                        pending.append(task)  # its "end" is to come
                    else:
                        del self.tasks[task]
        finally:
            self.ray.shutdown()
            shutil.rmtree(self.stops, ignore_errors=True)

    def interrupt(self, job):
        """Ctrl-C to one job's run (a search prunes it): its stop file, which its task watches."""
        if id(job) in self.numbers:
            (self.stops / str(self.numbers[id(job)])).touch()

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
            job.rc, job.why = 1, last_line(str(err)) or type(err).__name__
            return "end"

    def alive(self):
        return self.thread.is_alive()

    def stop(self):
        """Every run interrupted, and no task not yet started starts one (see ray_task)."""
        self.stopping = True
        (self.stops / "sweep").touch()
