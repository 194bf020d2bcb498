"""archive (shell exparchive): runs into one .tar.gz; unarchive (expunarchive): them back.

An archive holds `runtag-archive.json` (what is in it: the runs, their commits, the host, the
date), then each run's folder as `<tag>/<id>/...` in a fixed order: its record, log,
TensorBoard events, other files, and the checkpoints asked for, links kept as relative links;
never the lock, `.reserve` or a killed write's temporaries (carried.py). It is written
through a temporary beside the file (utils/atomic.py): a kill leaves no half archive under its name.
Unpacking checks every member first (no absolute path, no `..`, only a run's files, folders and
links inside it), then brings each run in whole through the staging area (staging.py).
"""
import json
import os
import tarfile
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

from utils import atomic, paths, runs
from utils.errors import UserError
from utils.housekeeping import carried, staging

MANIFEST = "runtag-archive.json"
CHECKPOINTS = ("best", "all", "none")


def add_archive(p):
    p.add_argument("runs", nargs="+", metavar="RUNS", help="tag, tag/id, or a quoted glob of tags")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the archive to write (.tar.gz)")
    p.add_argument("--checkpoints", choices=CHECKPOINTS, default="best",
                   help="which checkpoint files go in: best (default: the best epoch's and its link), all, none")


def archive(args):
    chosen = runs.resolve(args.runs)
    output = target(args.output)
    for run in chosen:
        run.lock()  # a live run refused; held to the end, so none starts while it is read
    records = [(run, record_of(run)) for run in chosen]
    listed = {run: carried.contents(run.dir, args.checkpoints) for run in chosen}
    manifest = {"runtag_archive": 1, "created": runs.now(), "host": runs.host(), "root": str(paths.root()),
                "checkpoints": args.checkpoints,
                "runs": [{"name": str(run), "tag": run.tag, "commit": r.get("commit"), "status": r.get("status"),
                          "host": r.get("host"), "start": r.get("start")} for run, r in records]}
    with atomic.writing(output) as f, tarfile.open(fileobj=f, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        add_bytes(tar, MANIFEST, atomic.json_text(manifest).encode())
        for run in chosen:
            for rel in listed[run]:
                tar.add(run.dir / rel, arcname=f"{run}/{rel}", recursive=False)
    files = sum(len(found) for found in listed.values())
    print(f"runtag: {len(chosen)} run{'s' * (len(chosen) != 1)} ({files} entries, "
          f"{output.stat().st_size / 2**20:.1f} MiB) into {output}")
    return 0


def record_of(run):
    record = run.read()
    if record is None:
        raise UserError(f"the record of {run} is missing or damaged", "fix it, or leave the run out")
    return record


def target(output):
    path = Path(output)
    if path.is_dir():
        raise UserError(f"{output} is a folder", "give -o the name of the archive file to write, e.g. runs.tar.gz")
    if not path.parent.is_dir():
        raise UserError(f"the folder {path.parent} does not exist", "create it, or choose another -o")
    return path


def add_bytes(tar, name, data):
    import io
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


def add_unarchive(p):
    p.add_argument("file", metavar="FILE", help="an archive that `exparchive` wrote")


def unarchive(args):
    unpack(args.file, always=False).told("unarchived")
    return 0


def unpack(file, always):
    """Every run of an archive brought in whole (staging.Arrivals); `always`: each record gains
    imported_from, not only a renumbered one's (an unarchived run keeps its bytes)."""
    with opened(file) as tar:
        manifest, members = checked(tar, file)
        came_from = {"root": manifest.get("root"), "archive": os.path.abspath(file)}
        arrivals = staging.Arrivals()
        with staging.area() as base:
            folder = staging.stage(base)
            tar.extractall(folder, members=members, filter="data")
            for name in dict.fromkeys("/".join(m.name.split("/")[:2]) for m in members):
                staged = os.path.join(folder, name)
                record = runs.load(os.path.join(staged, runs.RECORD), name, quiet=True)
                if record is None:
                    print(f"runtag: warning: the record of {name} in {file} is missing or damaged — skipped")
                    continue
                arrivals.bring(staged, record, came_from, always)
    return arrivals


@contextmanager
def opened(file):
    """The archive open for reading, or one line saying why it cannot be."""
    if os.path.isdir(file):
        raise UserError(f"{file} is a folder, not an archive", "give the .tar.gz file `exparchive` wrote")
    if not os.path.exists(file):
        raise UserError(f"no file {file}", "give the path of an archive `exparchive` wrote")
    try:
        tar = tarfile.open(file, "r:*")
    except tarfile.TarError:
        raise UserError(f"{file} is not a .tar.gz archive", "give a file `exparchive` wrote") from None
    with tar:
        yield tar


def checked(tar, file):
    """(manifest, the run members) of a whole, safe archive, read before anything is written."""
    try:
        members = tar.getmembers()
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise UserError(f"{file} is damaged ({err})", "write it again with `exparchive`") from None
    for member in members:
        why = member.name != MANIFEST and unsafe(member)
        if why:
            raise UserError(f"{file} holds {member.name!r}: {why}",
                            "nothing was unpacked: it is no archive `exparchive` wrote, or it was altered")
    try:
        manifest = json.loads(tar.extractfile(MANIFEST).read())
    except (KeyError, AttributeError, ValueError):
        raise UserError(f"{file} is not a runtag archive (no readable {MANIFEST})",
                        "give a file `exparchive` wrote") from None
    return manifest, [m for m in members if m.name != MANIFEST]


def unsafe(member):
    """Why a member cannot be unpacked into a run folder, or '' when it can."""
    parts = member.name.split("/")
    if member.name.startswith("/") or ".." in parts:
        return "an absolute path or one with .."
    if len(parts) < 3 or not parts[0] or parts[0].startswith(".") or not runs.is_id(parts[1]) or "" in parts:
        return "not a path <tag>/<id>/... of a run's file"
    if not (member.isfile() or member.isdir() or member.issym()):
        return "neither a file, a folder nor a link"
    if member.issym() and not carried.inside("/".join(parts[2:]), member.linkname):
        return f"a link out of its run folder ({member.linkname})"
    return ""
