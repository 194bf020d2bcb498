"""statistic.json as runtag reads it: the one reader (`load`, as runs.load), and the type of
every field a verb uses, checked on read.

A record that parses but holds a wrong type (`"metrics": []`, `"seed": "abc"`, a JSON list) is
damaged: `load` returns None for it, as for a file that does not parse, says so once on stderr
naming the file and the field (`problem`), and keeps why for the commands that refuse it
(runs.one). Fields old records lack are checked where present. Cheap on purpose: a record's
shape (keys and their types) is checked once per command, then a dict lookup (bench_table.py).
"""
import json
import re

from utils import paths

NULL = type(None)
INT, NUMBER, TEXT, OBJECT, ARRAY, FLAG = {int}, {int, float}, {str}, {dict}, {list}, {bool}
SCALAR = frozenset({int, float, str, bool, NULL})  # a metric's value: recorder.py writes "nan" as a string
KIND = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number", NULL: "null"}


def field(types, nullable=False):
    return frozenset(types | ({NULL} if nullable else set()))


# Every field a verb reads; type(value) must be one of these (a bool is no integer).
FIELDS = {
    "tag": field(TEXT), "id": field(INT), "status": field(TEXT), "version": field(INT),
    "commit": field(TEXT, True), "command": field(TEXT, True), "seed": field(INT), "fixed_seed": field(FLAG, True),
    "overrides": field(OBJECT), "hparams": field(OBJECT), "metrics": field(OBJECT),
    "epoch": field(INT), "epochs": field(INT, True), "step": field(INT), "max_steps": field(INT, True),
    "evaluations": field(INT),
    "start": field(TEXT, True), "end": field(TEXT, True), "duration_s": field(NUMBER),
    "host": field(TEXT, True), "gpus": field(TEXT, True), "pid": field(INT, True), "world_size": field(INT),
    "nnodes": field(INT), "threads": field(INT, True), "parent": field(TEXT, True), "init_from": field(TEXT, True),
    "rerun_of": field(TEXT, True), "slurm_job_id": field(TEXT | INT, True), "requeues": field(INT),
    "versions": field(OBJECT), "evals": field(ARRAY), "notes": field(ARRAY), "error": field(TEXT, True),
}
REQUIRED = frozenset({"tag", "id", "status", "commit", "seed", "overrides", "hparams", "metrics"})  # runs.create writes them
TO_START = REQUIRED | {"fixed_seed", "epoch", "duration_s", "host", "pid"}  # con and rerun read these too (runs.one)
COMMIT = re.compile(r"[0-9a-f]{4,64}")  # a sha git can look up, never an option or a revision like HEAD~1
RUN_NAME = re.compile(r"[^/\0]+/[0-9]{1,18}")
ORDER = {"commit": "a hex commit id", "pid": "a pid 1..2**22", "seed": "an integer 0..2**63-1",
         "init_from": "a run name tag/id"}


def problem(record, name=None, required=REQUIRED):
    """Why the record is no record runtag can use, in a few words (`metrics is array, not object`);
    None when it is one. `name`: the run `tag/id` whose folder holds it, which it must name."""
    if type(record) is not dict:
        return f"it is {kind(record)}, not object"
    shape = (required, *record, *map(type, record.values()))  # records of one runtag share a few shapes
    why = SHAPES.get(shape, SHAPES)
    if why is SHAPES:
        if len(SHAPES) > 4096:
            SHAPES.clear()
        why = SHAPES[shape] = typed(record, required)
    return why or values(record) or (name is not None and mismatch(record, name)) or None


SHAPES = {}  # (required, keys..., types...) -> what typed() said of a record of that shape


def typed(record, required):
    if not required <= record.keys():
        return f"{min(required - record.keys())} is missing"
    for key, value in record.items():
        types = FIELDS.get(key)
        if types is not None and type(value) not in types:
            return f"{key} is {kind(value)}, not {expected(types)}"
    return None


def values(record):
    """The checks past the types, for the fields whose value decides what a command does."""
    commit, pid, init = record["commit"], record.get("pid"), record.get("init_from")
    wrong = ("commit" if commit is not None and not COMMIT.fullmatch(commit) else
             "pid" if pid is not None and not 0 < pid < 2**22 else  # os.kill(-1, 0) asks every process
             "seed" if not 0 <= record["seed"] < 2**63 else
             "init_from" if init is not None and not RUN_NAME.fullmatch(init) else None)
    if wrong:
        return f"{wrong} is {shown(record[wrong])}, not {ORDER[wrong]}"
    if not SCALAR.issuperset(map(type, record["metrics"].values())):
        key, value = next((k, v) for k, v in record["metrics"].items() if type(v) not in SCALAR)
        return f"metrics[{shown(key)}] is {kind(value)}, not a number or string"
    return None


def mismatch(record, name):
    """A record copied into another run's folder would let a command act on the wrong one."""
    tag, _, id = name.rpartition("/")
    if record["tag"] != tag or str(record["id"]) != id:
        return f"tag and id are {shown(record['tag'])} and {record['id']}, not its folder's {name}"
    return None


def kind(value):
    return KIND.get(type(value), type(value).__name__)


def expected(types):
    names = sorted({KIND[t] for t in types if t is not NULL} - ({"integer"} if float in types else set()))
    return " or ".join(names) + (" or null" if NULL in types else "")


def shown(value, limit=40):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parsed(path):
    """A JSON file's value, or None when it is missing or does not parse."""
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


DAMAGED = {}  # run name -> why its record could not be used, for this command


def load(path, name=None, quiet=False, required=REQUIRED):
    """The record in a statistic.json, or None when it is missing or damaged: it does not parse,
    cannot be read, or has a field of the wrong type (`problem`). A damaged one is named
    on stderr once (not with `quiet`); `damage(name)` says why. Plain strings, not pathlib: it is
    most of the time of reading 10,000 records."""
    try:
        with open(path, "rb", buffering=0) as f:  # unbuffered: one read of the whole file, no buffer per record
            record = decoded(f.readall())
    except FileNotFoundError:  # a run folder whose record is not written yet
        return None
    except OSError as err:  # a symlink loop, a folder where the file should be
        return damaged(path, name, f"is unreadable ({err.strerror or err})", quiet)
    except ValueError as err:  # not warned here: the listings say "missing or damaged", as before
        DAMAGED[name or path] = f"is not JSON ({str(err)[:60]})"
        return None
    why = problem(record, name, required)
    return record if why is None else damaged(path, name, f"is damaged: {why}", quiet)


DECODER = json.JSONDecoder()  # json.loads' own


def decoded(data):
    """json.loads(data), without its sniffing of the encoding where the answer is known: a record
    starts `{` and then a byte that is not 0, which json.detect_encoding reads as UTF-8."""
    if data[:1] == b"{" and data[1:2] != b"\0":
        return DECODER.decode(data.decode("utf-8", "surrogatepass"))
    return json.loads(data)


def damaged(path, name, why, quiet):
    DAMAGED[name or path] = why
    if not quiet:
        paths.skipped(path, why, "skipped; fix or delete it")
    return None


def damage(run):
    """Why the record of a run (or name `tag/id`) read in this command was damaged; None if it was not."""
    return DAMAGED.get(str(run))
