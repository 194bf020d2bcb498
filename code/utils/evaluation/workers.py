"""The processes that score runs: one child.py per run, in a process group of its own that dies
with this command (even by SIGKILL: the sweep's PR_SET_PDEATHSIG), --workers at a time, or one
per GPU slot (--gpus, --per-gpu: the sweep's local slots, CUDA_VISIBLE_DEVICES each)."""
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from utils import paths, process, runs
from utils.sweep import local
from utils.sweep.job import POLL_S, dying_with_us, last_line

CHILD = Path(__file__).with_name("child.py")
RUNNING = set()  # the children's groups, stopped on a Ctrl-C
LOCK = threading.Lock()


class Scored(SimpleNamespace):
    """A child's end: rc, metrics (a dict, or None), err (its stderr), seconds; began and host:
    when and where it was scored (a Ray node's, a Slurm job's, or this machine's)."""


def score(code_dir, request, env, root=None, stop=None):
    """Run child.py on the checkout's code/ and wait for it; a Scored. `root`: the project whose
    runs these are (default ours); `stop()`, asked while it runs: when true, it is stopped (a
    Ray task's way to hear a Ctrl-C of the command)."""
    cmd = dying_with_us([sys.executable, str(CHILD), str(code_dir), json.dumps(request)])
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began, begin = runs.now(), time.perf_counter()
        with LOCK:
            group = process.Group(cmd, cwd=Path(code_dir).parent, env={**env, "RUNTAG_ROOT": str(root or paths.root())},
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            RUNNING.add(group)
        try:
            rc = waited(group, stop)
        finally:
            with LOCK:
                RUNNING.discard(group)
        seconds = time.perf_counter() - begin
        out.seek(0)
        err.seek(0)
        said, text = last_line(out.read()), err.read()
    metrics = None
    if rc == 0:
        try:
            metrics = json.loads(said)
        except ValueError:
            rc, text = 1, text + f"\nno metrics in its output: {said[:200]!r}"
    return Scored(rc=rc, metrics=metrics, err=text, seconds=seconds, began=began, host=runs.host())


def waited(group, stop):
    """The group's exit status; SIGTERM to it once stop() says so."""
    while stop is not None:
        try:
            return group.wait(POLL_S)
        except subprocess.TimeoutExpired:
            if stop():
                group.signal(signal.SIGTERM)
                break
    return group.wait()


def slots(workers, gpus, per_gpu):
    """One environment per worker, as a sweep's local backend makes them."""
    return local.slots(SimpleNamespace(workers=workers, per_gpu=per_gpu), gpus)


def each(jobs, envs, do):
    """do(job, env) for every job, len(envs) at a time, each thread with its env. A Ctrl-C (or any
    error here) stops the children, and is raised."""
    todo, lock = iter(jobs), threading.Lock()

    def work(env):
        while True:
            with lock:
                job = next(todo, None)
            if job is None or stopping.is_set():
                return
            do(job, env)

    stopping = threading.Event()
    threads = [threading.Thread(target=work, args=(env,), daemon=True) for env in envs]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # short joins: a Ctrl-C is taken at once
    except BaseException:
        stopping.set()
        stop()
        raise


def stop():
    with LOCK:
        for group in RUNNING:
            group.signal(signal.SIGTERM)
