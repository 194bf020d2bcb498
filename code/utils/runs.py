"""Run folders and their statistic.json: allocate, create, read, find."""
import json
import os
import secrets
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from utils import atomic, paths, runlock
from utils.errors import UserError

VERSION = 1


def allocate(tag):
    """The next free id of a tag, claimed by mkdir: two concurrent runs never get the same one."""
    base = paths.results() / tag
    base.mkdir(parents=True, exist_ok=True)
    n = len(ids(tag))
    while True:
        try:
            (base / str(n)).mkdir()
            return n
        except FileExistsError:
            n += 1


def ids(tag):
    """The ids of a tag's run folders; [] for a tag without a folder, or a name no folder can have
    (too long, a NUL). Only ASCII digits: str.isdigit() also takes `²` and `٣`, which int() refuses
    or reads as 3."""
    try:
        names = os.listdir(paths.results() / tag)
    except (OSError, ValueError):
        return []
    return sorted(int(name) for name in names if is_id(name))


def is_id(text):
    return text.isascii() and text.isdigit()


def fresh_seed():
    return secrets.randbelow(2**31)


def fixed_seed():
    return int((paths.CODE / "seed").read_text().split()[0])


def create(tag, commit, command, overrides, seed, fixed, parent=None, extra=None):
    """Claim a new id, lock its folder for this process (and the run it starts), and write its
    first statistic.json (status `running`)."""
    id = allocate(tag)
    runlock.acquire(paths.run_dir(tag, id), f"{tag}/{id}")
    record = {
        "version": VERSION, "tag": tag, "id": id, "status": "running",
        "commit": commit, "command": command,
        "seed": seed, "fixed_seed": fixed,
        "overrides": overrides, "hparams": {}, "metrics": {},
        "epoch": 0, "epochs": None, "start": now(), "end": None, "duration_s": 0.0,
        "host": socket.gethostname(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "pid": os.getpid(), "world_size": 1, "nnodes": 1, "parent": parent,
        "versions": {"python": sys.version.split()[0]},
        **(extra or {}),
    }
    write(paths.run_dir(tag, id), record)
    return id, record


def now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write(run_dir, record):
    atomic.write_json(Path(run_dir) / "statistic.json", record)


def read(run_dir):
    """The run's record, or None when statistic.json is missing or damaged."""
    try:
        return json.loads((Path(run_dir) / "statistic.json").read_text())
    except (OSError, ValueError):
        return None


def shown_status(record):
    """`dead` for a run that says `running` but whose process is gone from this host."""
    if record.get("status") == "running" and record.get("host") == socket.gethostname() \
            and not alive(record.get("pid")) and not runlock.locked(paths.run_dir(record["tag"], record["id"])):
        return "dead"
    return record.get("status")


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: only its parent has not reaped it yet
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def git_head(cwd=paths.CODE):
    out = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=cwd, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def tags():
    base = paths.results()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


def resolve(spec):
    """'tag' -> all its run folders; 'tag/3' -> that one. Unknown ones are a user mistake."""
    tag, _, id = spec.partition("/")
    if tag not in tags():
        raise UserError(f"unknown tag {tag!r}", "see `expls` for the tags that have runs")
    if not id:
        return [paths.run_dir(tag, i) for i in ids(tag)]
    if not is_id(id) or len(id) > 18 or int(id) not in ids(tag):  # no id is that long; int() of 5000 digits raises
        raise UserError(f"unknown run {spec!r}", f"see `expels {tag}` for its ids")
    return [paths.run_dir(tag, int(id))]
