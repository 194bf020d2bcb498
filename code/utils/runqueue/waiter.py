"""The waiter: one detached process per results folder that starts queued runs as slots free up.

It survives a closed terminal (a session of its own, no terminal, SIGHUP ignored) and needs no
pid file: an flock on .queue/waiter.lock says one is alive (a second exits at once), and the
kernel lets go of it when the waiter dies however it dies. Each run it starts is a child
`queue --start RUN` that holds the run's lock and its slot's lock for the run's whole life, so a
killed waiter leaves no slot held but by live runs, and a reboot leaves the records `queued`: the
next `run --queue` or `queue` starts a waiter that starts them.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from utils import notify, paths, runlock, runs
from utils.runqueue import slots

POLL_S = 0.5  # how often it looks again for a free slot or an ended run it waits for
TRIES = 3  # a child that exits with its run still `queued` (it could not even start) is tried again, so often


def spawn():
    """A waiter, detached; it exits at once if another holds the lock."""
    base = slots.folder()
    cli = Path(__file__).resolve().parents[1] / "cli.py"
    with open(base / "waiter.log", "ab") as log, open(os.devnull, "rb") as null:
        subprocess.Popen([sys.executable, str(cli), "queue", "--wait"], stdin=null, stdout=log, stderr=log,
                         start_new_session=True, cwd=paths.root(), env={**os.environ, "RUNTAG_ROOT": str(paths.root())})


def loop():
    """Start what waits, in submission order, while anything waits; then exit."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    lock = slots.try_lock(slots.folder() / "waiter.lock")
    if lock is None:
        return 0  # another waiter is alive: it will see the new runs
    say(f"waiter {os.getpid()} starts")
    tried = {}  # run name -> [its child, how often started]
    while True:
        for child, _ in tried.values():
            child.poll()  # reaped: no zombies
        if not sweep(tried):
            os.close(lock)  # then look once more: a run queued while we decided to go finds a waiter
            if not any(queued(runs.Run.parse(name)) and tried.get(name, (None, 0))[1] < TRIES
                       for _, name in slots.waiting()):
                say(f"waiter {os.getpid()} exits: nothing waits")
                return 0
            lock = slots.try_lock(slots.folder() / "waiter.lock")
            if lock is None:
                return 0
        time.sleep(POLL_S)


def queued(run):
    return (run.read() or {}).get("status") == "queued"


def sweep(tried):
    """One look at the waiting list: runs started where a slot is free; True while any run waits."""
    waits, full = False, set()
    for sequence, name in slots.waiting():
        try:
            waits = look(sequence, name, tried, full) or waits
        except Exception as err:  # noqa: BLE001 -- a damaged record or list file stops no other run
            say(f"{name}: {type(err).__name__}: {err}; left as it is")
            tried[name] = (tried.get(name, (None, 0))[0], TRIES)
    return waits


def look(sequence, name, tried, full):
    """One entry of the waiting list: started if it can be; True while it waits."""
    run = runs.Run.parse(name)
    record = run.read()
    status = runs.status(record) if record else None
    if status != "queued":
        if status not in ("running",):  # ended (or damaged): off the list
            slots.remove(sequence)
        return False
    child, times = tried.get(name, (None, 0))
    if times >= TRIES:
        return False  # its start keeps failing (see waiter.log): left queued for the next waiter
    queue = record["queue"]
    key = tuple(queue["slots"])
    if (child and child.returncode is None) or runlock.locked(run.dir) or key in full:
        return True  # being started; or older runs wait for these slots
    if not after(run, queue):
        return True
    taken = slots.take(queue["slots"], queue.get("gpu_free_mb"))
    if taken is None:
        full.add(key)  # in submission order: no later run jumps onto these slots
        return True
    slot, fd = taken
    tried[name] = (launch(run, slot, fd), times + 1)
    return True


def after(run, queue):
    """True once the runs it waits for ended; with after_ok, one that did not finish cancels it."""
    ended = []
    for name in queue.get("after", []):
        record = runs.Run.parse(name).read()
        status = runs.status(record) if record else "missing"
        if status in ("running", "queued", "pending"):
            return False
        ended.append((name, status))
    bad = [f"{name} {status}" for name, status in ended if status != "finished"]
    if queue.get("after_ok") and bad:
        from utils.errors import UserError
        try:
            cancel(run, f"--after-ok: {', '.join(bad)}")
        except UserError:
            pass  # being started or taken out meanwhile
        return False
    return True


def launch(run, slot, fd):
    """The child that runs it, holding the slot's lock (fd); our copy closed."""
    env = {**os.environ, "RUNTAG_ROOT": str(paths.root())}
    gpu = slots.gpu_of(slot)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    cli = Path(__file__).resolve().parents[1] / "cli.py"
    with open(slots.folder() / "waiter.log", "ab") as log:
        child = subprocess.Popen([sys.executable, str(cli), "queue", "--start", str(run), "--slot", slot],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=[fd], env=env)
    os.close(fd)
    say(f"started {run} on {slot} (pid {child.pid})")
    return child


def start(name, slot):
    """In the child: the run's lock, its status still `queued` (no run starts twice), then the
    normal start path on its tagged commit. The slot's lock is inherited and held till we exit."""
    from utils import gitrepo
    from utils.errors import UserError
    from utils.supervisor import execute
    run = runs.Run.parse(name)
    try:
        run.lock()
    except UserError:
        return 0  # someone else starts it
    record = run.read()
    if not record or record.get("status") != "queued":
        return 0  # cancelled, or started already
    queue = {**record["queue"], "slot": slot, "started": runs.now()}
    resume = bool(queue.get("resume"))  # `con --queue`: its first start stays in the record
    record.update(status="running", pid=os.getpid(), host=runs.host(), queue=queue, **({} if resume else {"start": runs.now()}))
    run.write(record)
    print(f"runtag: {run} starts on {slot} at {record['commit'][:10]}{' (continued)' if resume else ''}", flush=True)
    nodes = type("Nodes", (), {"nnodes": 1, "node_rank": 0, "master": None})()
    try:
        with gitrepo.checkout_of(gitrepo.open_repo(), record["commit"]) as where:
            return execute(where, run, resume=resume, nproc=queue.get("nproc"), args=nodes,
                           threads=record.get("threads") if resume else None)
    except Exception as err:  # a worktree that cannot be made: the run ends failed, said why
        run.conclude("failed", ("running",), error=f"{type(err).__name__}: {err}")
        raise


def cancel(run, reason="taken out of the queue (queue rm)"):
    """A waiting run out of the queue: under its lock, still `queued`, its record ends `cancelled`."""
    from utils.errors import UserError
    run.lock()  # a run being started holds it: one line, nothing changed
    try:
        record = run.read()
        if not record or record.get("status") != "queued":
            raise UserError(f"{run} is not waiting in the queue ({(record or {}).get('status', 'no record')})",
                            "see `queue` for the runs that wait")
        record.update(status="cancelled", end=runs.now(), cancelled_reason=reason)
        run.write(record)
        slots.remove(record["queue"]["sequence"])
        print(f"runtag: {run} cancelled: {reason}", flush=True)
    finally:
        runlock.release(run.dir)
    notify.run_ended(run)  # outside the lock: a slow notifier holds nothing


def say(line):
    print(f"{runs.now()} {line}", flush=True)
