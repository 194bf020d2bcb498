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

from utils import paths, process
from utils.sweep import local
from utils.sweep.job import dying_with_us, last_line

CHILD = Path(__file__).with_name("child.py")
RUNNING = set()  # the children's groups, stopped on a Ctrl-C
LOCK = threading.Lock()


class Scored(SimpleNamespace):
    """A child's end: rc, metrics (a dict, or None), err (its stderr), seconds."""


def score(code_dir, request, env):
    """Run child.py on the checkout's code/ and wait for it; a Scored."""
    cmd = dying_with_us([sys.executable, str(CHILD), str(code_dir), json.dumps(request)])
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        begin = time.perf_counter()
        with LOCK:
            group = process.Group(cmd, cwd=Path(code_dir).parent, env={**env, "RUNTAG_ROOT": str(paths.root())},
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            RUNNING.add(group)
        try:
            rc = group.wait()
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
    return Scored(rc=rc, metrics=metrics, err=text, seconds=seconds)


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
