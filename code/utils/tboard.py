"""itb, and the TensorBoard that `run` starts: at most one of ours per project, in the background.

It is TensorBoard itself (`python -m tensorboard.main`), bound to 127.0.0.1 on a free port,
detached in a session of its own so that closing the shell or Ctrl-C on a run leaves it up.
Its pid, port and what it shows are kept in __statistic__/tensorboard/state.json, its output
in __statistic__/tensorboard/log, and itb's choice of runs as symlinks under view/;
`itb --stop` reads the state to stop it.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from utils import atomic, paths, process, runs
from utils.errors import UserError

STARTUP_S = 60  # a TensorBoard younger than this may not answer yet: it still counts as serving


def folder():
    return paths.statistic() / "tensorboard"


def add_itb(p):
    p.add_argument("specs", nargs="*", metavar="TAG[/ID]", help="the runs to show; a bare tag means all its runs")
    p.add_argument("--stop", action="store_true", help="stop the TensorBoard that itb or run started")


def itb(args):
    if args.stop:
        if args.specs:
            raise UserError("itb --stop takes no runs", "write `itb --stop` alone")
        stopped = stop()
        print(f"runtag: stopped TensorBoard {stopped['url']} (pid {stopped['pid']})" if stopped
              else "runtag: no TensorBoard of ours is running")
        return 0
    if not args.specs:
        raise UserError("itb needs the runs to show", "e.g. `itb wide narrow/2`; `itb --stop` stops it")
    chosen = runs.resolve(args.specs)
    with atomic.locked(ensure_folder()):
        stop()  # the new view replaces the old one: never two of ours
        state = start(["--logdir", str(make_view(chosen))], [str(run) for run in chosen])
    if not wait_until_up(state):
        print(f"runtag: TensorBoard did not start; see {folder() / 'log'}", file=sys.stderr)
        return 1
    print(f"runtag: TensorBoard over {' '.join(state['shows'])} at {state['url']}  (stop: itb --stop)")
    return 0


def serve_results(config):
    """Called by `run`: one TensorBoard over all of __result__, unless one of ours already serves
    (config `tensorboard = False` or the environment variable CI turns this off)."""
    if not config.get("tensorboard") or "CI" in os.environ:
        return None
    with atomic.locked(ensure_folder()):
        state = read_state()
        if serving(state):
            return state
        stop()  # a recorded one that stopped answering
        state = start(["--logdir", str(paths.results())], ["__result__"])
    print(f"runtag: TensorBoard over __result__ at {state['url']}  (stop: itb --stop)", flush=True)
    return state


def make_view(chosen):
    """view/<tag>/<id> -> the run's tensorboard/ folder: TensorBoard names each run `<tag>/<id>`
    (with --logdir_spec it would say `<tag>/<id>/.`) and still sees a `con`'s new event files."""
    view = folder() / "view"
    shutil.rmtree(view, ignore_errors=True)  # symlinks only: rmtree never follows them
    for run in chosen:
        link = view / run.tag / str(run.id)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(run.tensorboard, link.parent), target_is_directory=True)
    return view


def start(source, shows):
    """Start TensorBoard detached and record it; returns the state."""
    port = free_port()
    with open(folder() / "log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", *source, "--host", "127.0.0.1", "--port", str(port),
             "--load_fast", "false"],  # the Rust data server cannot read a --logdir_spec
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=paths.root(),
            start_new_session=True)
    state = {"pid": proc.pid, "port": port, "url": f"http://127.0.0.1:{port}/", "shows": shows,
             "started": runs.now(), "started_s": time.time()}
    try:
        atomic.write_json(folder() / "state.json", state)
    except OSError:  # a full __statistic__: no TensorBoard nobody could find to stop
        os.killpg(proc.pid, signal.SIGTERM)
        raise
    return state


def stop():
    """Stop the recorded TensorBoard (its whole session) and forget it; returns its state or None."""
    state = read_state()
    (folder() / "state.json").unlink(missing_ok=True)
    if not state or not is_ours(state["pid"]):
        return None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(state["pid"], sig)
        except ProcessLookupError:
            break
        deadline = time.time() + 5
        while process.alive(state["pid"]) and time.time() < deadline:
            time.sleep(0.05)
        if not process.alive(state["pid"]):
            break
    return state


def serving(state):
    if not state or not is_ours(state["pid"]):
        return False
    return answers(state["port"]) or time.time() - state.get("started_s", 0) < STARTUP_S


def wait_until_up(state, timeout=STARTUP_S):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if answers(state["port"]):
            return True
        if not process.alive(state["pid"]):
            return False
        time.sleep(0.2)
    return False


def is_ours(pid):
    """Alive, and still a TensorBoard: a recorded pid may have been reused by another program."""
    if not process.alive(pid):
        return False
    if not os.path.isdir("/proc/self"):  # no /proc (macOS): trust the pid
        return True
    try:
        return b"tensorboard" in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_state():
    try:
        return json.loads((folder() / "state.json").read_text())
    except (OSError, ValueError):
        return None


def ensure_folder():
    folder().mkdir(parents=True, exist_ok=True)
    return folder()
