"""A run: the folder __result__/<tag>/<id>/ and its record, statistic.json.

The one place that knows a run folder's layout, a run's name (`tag/3`), what the names, tags
and globs on a command line stand for, and the record's life: `create` (the CLI's `run`),
`start` and `write` every epoch (the Recorder, in main.py), `conclude` (the CLI, when the run's
processes could not say how they ended). One serialiser (`encode`), one reader (`load`).
"""
import os
import sys
from pathlib import Path

# Listings import this module: what only writing, creating or a Slurm job needs (atomic, secrets,
# shutil, datetime, slurm) is imported where used, keeping `expls` near a bare interpreter.
from utils import paths, runlock, schema
from utils.schema import damage, load, parsed  # noqa: F401 (runs.load: the one reader of records)
from utils.errors import UserError

VERSION = 1
RECORD, LOG, TENSORBOARD, CHECKPOINTS, RESERVE = "statistic.json", "log", "tensorboard", "checkpoint", ".reserve"
SLURM_LOGS = {".out": "slurm.out", ".err": "slurm.err"}  # links to the Slurm job's own output (utils/submit.py)
LAST, BEST = "epoch_last.pth", "epoch_best.pth"  # links in checkpoint/ to the newest and the best epoch's file
SUMMARY = ".expls.json"  # in a tag's folder: what expls read of its runs' records (utils/summary.py)
GLOB = "*?["


def inside(name):
    """A path in the run's folder, as an attribute of Run."""
    return property(lambda run: run.dir / name)


class Run:
    """A run's name: immutable, equal and hashed by (tag, id). Not a dataclass: importing
    dataclasses (inspect, ast) was a fifth of a listing's start."""
    __slots__ = ("tag", "id")
    __match_args__ = ("tag", "id")

    def __init__(self, tag, id):
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "id", id)

    def __setattr__(self, name, value):
        raise AttributeError(f"cannot assign to field {name!r}")

    __delattr__ = __setattr__

    def __eq__(self, other):
        return (self.tag, self.id) == (other.tag, other.id) if other.__class__ is Run else NotImplemented

    def __hash__(self):
        return hash((self.tag, self.id))

    def __repr__(self):
        return f"Run(tag={self.tag!r}, id={self.id!r})"

    def __reduce__(self):  # pickle and copy: through __init__, as the slots refuse setattr
        return Run, (self.tag, self.id)

    def __str__(self):
        return f"{self.tag}/{self.id}"

    @classmethod
    def of(cls, record):
        return cls(record["tag"], record["id"])

    @classmethod
    def parse(cls, name):
        """`tag/3` as a Run; a name that is not one is a ValueError."""
        tag, slash, id = name.partition("/")
        if not (tag and slash and is_id(id)):
            raise ValueError(f"not a run name tag/id: {name!r}")
        return cls(tag, int(id))

    @classmethod
    def at(cls, folder):
        """The run whose folder this is; a path outside this project's __result__ is a mistake.
        Both sides resolved: __result__ may be a link to another disk."""
        folder = Path(folder).resolve()
        if not (is_id(folder.name) and folder.parent.parent == paths.results()):
            raise UserError(f"{folder} is not a run folder __result__/<tag>/<id> of this project",
                            "start runs with `run <tag>`")
        return cls(folder.parent.name, int(folder.name))

    @property
    def dir(self):
        return paths.results() / self.tag / str(self.id)

    log = inside(LOG)
    tensorboard = inside(TENSORBOARD)
    checkpoints = inside(CHECKPOINTS)
    reserve = inside(RESERVE)

    def read(self):
        """The record, or None when statistic.json is missing or damaged."""
        return records([self])[0][1]

    def write(self, record, background=None):
        """Replace the record atomically; with `background` (an executor) the encoding and the
        disk write happen there, from the record as it is now (its values never change in place:
        copying the dicts that change is enough)."""
        from utils import atomic
        if background is None:
            return atomic.write_bytes(self.dir / RECORD, encode(record))
        now = {**record, "metrics": dict(record.get("metrics") or {})}
        return background.submit(lambda: atomic.write_bytes(self.dir / RECORD, encode(now)))

    def start(self, **fields):
        """The record with `fields` set, as a run's processes start (or continue) it."""
        record = self.read()
        record.update(status="running", end=None, **fields)
        self.write(record)
        return record

    def conclude(self, status, unless_now, **fields):
        """Set the status the run's processes could not record (and `fields`), when the record still
        says one of `unless_now`. True if it did."""
        record = self.read()
        if record and record["status"] in unless_now:
            record.update(status=status, end=now(), **fields)
            self.write(record)
            return True
        return False

    def lock(self, pid=None):
        """Hold the folder's lock (utils/runlock.py) for this process and its children; its descriptor."""
        return runlock.acquire(self.dir, str(self), pid)


def encode(record):
    """statistic.json's text: strict JSON, indented (atomic.json_text)."""
    from utils import atomic
    return atomic.json_text(record).encode()


def warned(run):
    """True once this command has warned that the record of this run is damaged."""
    return f"{paths.results()}/{run}/{RECORD}" in paths.SAID


def records(runs, quiet=False):
    """[(run, record or None)] of Runs, or of names `tag/id`, read as fast as the files allow."""
    base = str(paths.results())
    return [(run, load(f"{base}/{run}/{RECORD}", str(run), quiet)) for run in runs]


def create(tag, commit, command, overrides, seed, fixed, parent=None, extra=None):
    """Claim the tag's next free id, lock its folder for this process (and the run it starts),
    and write its first record (status `running`). Returns (run, record)."""
    import shutil
    run = Run(tag, allocate(tag))
    record = {
        "version": VERSION, "tag": tag, "id": run.id, "status": "running",
        "commit": commit, "command": command,
        "seed": seed, "fixed_seed": fixed,
        "overrides": overrides, "hparams": {}, "metrics": {},
        "epoch": 0, "epochs": None, "start": now(), "end": None, "duration_s": 0.0,
        "host": host(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "pid": os.getpid(), "world_size": 1, "nnodes": 1, "parent": parent,
        "versions": {"python": sys.version.split()[0]},
        **(extra or {}),
    }
    try:
        run.lock()
        run.write(record)
    except BaseException:  # a full or read-only disk: a claimed folder without its record is no run
        shutil.rmtree(run.dir, ignore_errors=True)
        raise
    return run, record


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


def now():
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def fresh_seed():
    import secrets
    return secrets.randbelow(2**31)


def fixed_seed():
    return int((paths.CODE / "seed").read_text().split()[0])


def status(record, queue=None):
    """The record's status, but `dead` for a run that says `running` on this host while nobody holds
    its folder's lock (runlock.py: the kernel's word, whatever the pid, which a reboot may have given
    to another process); for a run in a Slurm job, with `queue` (slurm.queue_of), as the job's state
    corrects it."""
    job = record.get("slurm_job_id")
    if job and queue is not None:
        from utils import slurm
        if record.get("status") in slurm.ASKED:
            return slurm.live_status(record["status"], queue.get(str(job)))
    if record.get("status") == "running" and record.get("host") == host() \
            and not runlock.locked(Run.of(record).dir):
        return "dead"
    return record.get("status")


def host():
    """This machine's name: socket.gethostname() is uname(2)'s nodename too, without importing socket."""
    return os.uname().nodename


# Naming runs: `tag` (all its runs), `tag/id`, or a quoted glob of tags (`'lr*'`, `'lr*/0'`).

def tags():
    """The tags that have a folder under __result__, sorted; one directory read. An entry that
    cannot be read (a symlink loop) is skipped with a warning, never hides the others."""
    try:
        return sorted(paths.subfolders(paths.results()))
    except OSError:  # no __result__ yet
        return []


def ids(tag):
    """The ids of a tag's run folders; [] for a tag without a folder, or a name no folder can have
    (too long, a NUL). Only ASCII digits: str.isdigit() also takes `²` and `٣`, which int() refuses
    or reads as 3."""
    try:
        names = os.listdir(paths.results() / tag)
    except (OSError, ValueError):
        return []
    return sorted(int(name) for name in names if is_id(name))


def of(tag):
    """The runs of a tag, by id; [] for a tag without runs."""
    return [Run(tag, id) for id in ids(tag)]


def is_id(text):
    return text.isascii() and text.isdigit() and len(text) <= 18  # int() of 5000 digits raises


def resolve(specs):
    """The runs that specs name, in order, each once. Every spec must name at least one run."""
    found, known = {}, None
    for spec in specs:
        tag, _, id = spec.partition("/")
        if any(c in tag for c in GLOB):
            import fnmatch
            known = tags() if known is None else known
            matched = [t for t in fnmatch.filter(known, tag) if tag.startswith("_") or not t.startswith("_")]
            runs = [run for t in matched for run in of(t) if not id or str(run.id) == id]
            if not runs:
                raise UserError(f"no run matches {spec!r}", "see `expls` for the tags that have runs")
        else:
            runs = of_tag(spec, tag, id)
        found.update(dict.fromkeys(runs))
    return list(found)


def of_tag(spec, tag, id):
    """The runs of `tag`, or its run `id`."""
    if not tag or tag.startswith(".") or not os.path.isdir(paths.results() / tag):  # False for a name too long
        raise UserError(f"unknown tag {tag!r}", "see `expls` for the tags that have runs")
    known = of(tag)
    if not known:
        raise UserError(f"tag {tag!r} has no runs", "see `expls` for the tags that have runs")
    if not id:
        return known
    if not is_id(id) or Run(tag, int(id)) not in known:
        raise UserError(f"unknown run {spec!r}", f"see `expels {tag}` for its ids")
    return [Run(tag, int(id))]


def one(spec, choose=lambda runs: runs[-1]):
    """(run, record) of the one run a spec names: `tag/id`, or the run `choose` picks of the
    tag's runs (default its newest). A glob must match runs of one tag only."""
    runs = resolve([spec])
    matched = list(dict.fromkeys(run.tag for run in runs))
    if len(matched) > 1:
        raise UserError(f"{spec!r} names runs of {len(matched)} tags: {', '.join(matched[:4])}"
                        f"{' ...' if len(matched) > 4 else ''}", "name one tag, or one run tag/id")
    run = runs[0] if "/" in spec else choose(runs)
    record = load(run.dir / RECORD, str(run), quiet=True, required=schema.TO_START)
    if record is None:
        why = damage(run)
        if why:
            raise UserError(f"the record of {run} {why} ({run.dir / RECORD})", "fix or delete it, or choose another run")
        raise UserError(f"the record of {run} is missing", "choose another run")
    return run, record
