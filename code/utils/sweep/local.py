"""local: the backend that runs a sweep's runs as subprocesses of this machine, on CPU workers
or on GPUs (--workers, --gpus, --per-gpu). The backend interface: utils/sweep/__init__.py."""
import os
import threading

from utils import paths
from utils.errors import UserError
from utils.sweep.job import Child

HELP = "subprocesses on this machine (the default)"
OPTIONS = ()  # --workers, --gpus and --per-gpu are the sweep's own: every backend reads them


def add_options(p):
    pass


def check(args, gpus):
    if gpus and args.workers is not None:
        raise UserError("--workers with --gpus", "choose one: with --gpus there are (GPUs x --per-gpu) workers")


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


class Pool:
    """Workers, one thread each, pull the jobs in order and run one subprocess at a time."""

    def __init__(self, args, gpus):
        self.envs = slots(args, gpus)
        self.lock = threading.Lock()
        self.running = {}  # job id: its Child
        self.stopping = False
        self.threads = []

    def start(self, jobs, cmd, events):
        todo = iter(jobs)  # a list, or a search asking its trials as workers free up
        self.threads = [threading.Thread(target=self.work, args=(env, todo, cmd, events), daemon=True)
                        for env in self.envs]
        for thread in self.threads:
            thread.start()

    def work(self, env, todo, cmd, events):
        while True:
            with self.lock:  # no run starts after stop() has interrupted the others
                if self.stopping:
                    return
                job = next(todo, None)
                if job is None:
                    return
                try:
                    child = Child(cmd(job), env, paths.root())
                except OSError as err:  # no run: say so, and go on with the next
                    job.rc, job.why = 1, str(err)
                    events.put(("end", job))
                    continue
                self.running[id(job)] = child
            for kind in child.follow(job):
                events.put((kind, job))
            with self.lock:
                self.running.pop(id(job), None)

    def alive(self):
        return any(thread.is_alive() for thread in self.threads)

    def stop(self):
        with self.lock:
            self.stopping = True
            for child in self.running.values():
                child.interrupt()

    def interrupt(self, job):
        """Ctrl-C to one job's run (a search prunes it)."""
        with self.lock:
            child = self.running.get(id(job))
        if child:
            child.interrupt()
