"""journal: a search's study file, __statistic__/search/<tag>.journal (Optuna's JournalFileBackend:
one JSON line per operation), checked before Optuna reads it and before each append.

A writer killed mid-line leaves the last line torn (no newline, or not JSON). Appending after it
would glue the next line onto it and break the study for good, so the torn bytes are set aside
in <tag>.journal.torn and the file is cut back to its last whole line, with one warning; under the
lock Optuna's own writers take (Slurm array tasks share the file), so no live writer is cut. A
damaged line before the last is refused in one line naming it: the lines after it may depend on
it, so only a person can mend it. `trials` reads without writing (--dry-run), as if a torn last
line were absent. Optuna is imported here only when called (it is optional).
"""
import json
import os
import sys

from utils import paths
from utils.errors import UserError

TORN = ".torn"


def shown(path):
    try:
        return str(path.relative_to(paths.root()))
    except ValueError:
        return str(path)


def parse(data, path):
    """(replayed, end): the journal's operations replayed as Optuna will (a JournalStorageReplayResult),
    and the length of the bytes they span (data[end:] is a torn last line). A damaged line before
    the last: UserError naming file and line."""
    from optuna.storages.journal._storage import JournalStorageReplayResult

    chunks = data.split(b"\n")  # as Optuna reads it: lines end at b"\n" only
    tail = chunks.pop()  # the bytes after the last newline: a line cut short, or b""
    replay = JournalStorageReplayResult("runtag-check-")  # no line is this worker's: replayed as Optuna will
    end = 0
    for number, chunk in enumerate(chunks, 1):
        try:
            log = json.loads(chunk)
        except Exception as err:  # ValueError, or RecursionError for JSON nested too deep
            if number == len(chunks) and not tail:
                break  # the last line, not JSON: torn
            refuse(path, number, f"not JSON: {type(err).__name__}")
        try:
            replay.apply_logs([log])
        except Exception as err:  # what Optuna's replay would raise: a line that is JSON but no operation
            refuse(path, number, f"not an operation Optuna can replay: {type(err).__name__} {err}"[:160])
        end += len(chunk) + 1
    return replay, end


def refuse(path, number, why):
    name = shown(path)
    raise UserError(f"search journal {name} is damaged at line {number} ({why})",
                    f"mend that line, or keep the lines before it (head -n {number - 1} {name} > {name}.new && "
                    f"mv {name}.new {name}), or move the file away to start the search afresh")


def set_aside(path, data, end, why):
    """Move data[end:] into <journal>.torn, then cut the journal there: a kill in between leaves
    the bytes in both files, never in neither, and no whole line is lost."""
    aside = path.with_name(path.name + TORN)
    torn = data[end:]
    with open(aside, "ab") as f:
        f.write(torn if torn.endswith(b"\n") else torn + b"\n")
        f.flush()
        os.fsync(f.fileno())
    with open(path, "r+b") as f:
        f.truncate(end)
        os.fsync(f.fileno())
    lines = data[:end].count(b"\n")
    print(f"runtag: warning: search journal {shown(path)}: its last line was {why} ({len(torn)} bytes, "
          f"a write cut short); set aside in {aside.name}, the study goes on from its {lines} whole lines",
          file=sys.stderr, flush=True)


def mend(path, whole):
    """Under the journal's lock: check every line (`whole`), or only that the file ends with a
    newline (before each append), and set a torn last line aside."""
    with open(path, "rb") as f:
        if not whole:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            f.seek(0)
        data = f.read()
    end = parse(data, path)[1] if whole else data.rfind(b"\n") + 1
    if end < len(data):
        set_aside(path, data, end, "not JSON" if data.endswith(b"\n") else "cut short, without its newline")


def backend(path):
    """Optuna's file backend over the journal, whole lines only: checked and mended now, and
    its tail checked again before each append, under the lock Optuna's writers share."""
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    class Mending(JournalFileSymlinkLock):
        def acquire(self):
            super().acquire()
            try:
                mend(path, whole=False)  # a writer killed mid-line since the last look
            except BaseException:
                self.release()
                raise
            return True

    found = JournalFileBackend(str(path), lock_obj=Mending(str(path)))  # creates the file if missing
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        mend(path, whole=True)
    finally:
        lock.release()
    return found


def trials(path, tag):
    """The study's trials, read without writing anything: [] with no journal or no such study."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    replayed = parse(data, path)[0]
    for study in replayed.get_all_studies():
        if study.study_name == tag:
            return replayed.get_all_trials(study._study_id, states=None)
    return []
