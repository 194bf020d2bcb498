"""record: experiment lists, `__statistic__/exper-list/<list>.txt`, one `<tag>/<id>` a line.

Also what title and table share: reading the records of a list (a damaged one is named and skipped).
"""
import os
import re
import sys

from utils import atomic, paths, runs
from utils.errors import UserError, undecodable

# A list's name is a file name: no /, no dot; ASCII; 120 characters hold `sweep-<tag>` (a tag has
# at most 100) and stay clear of the file system's 255 bytes.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]{0,119}")
RUN = re.compile(r"[^/\s]+/[0-9]{1,18}")  # not \d: it takes `²` and `٣` too; runs.is_id's length


def add_record(p):
    p.add_argument("-l", dest="list", default="record", metavar="LIST",
                   help="the experiment list to append to (default: record)")
    p.add_argument("specs", nargs="*", metavar="TAG[/ID]",
                   help="a run, all runs of a tag, or a quoted glob of tags: 'lr*'; "
                        "none: the newest finished run (of every tag)")


def record(args):
    check_name(args.list)
    specs = args.specs or [newest_finished()]
    added = add(args.list, specs)
    where = list_path(args.list).relative_to(paths.root())
    print(f"recorded {len(added)} run{'s' * (len(added) != 1)} into {where}"
          + (f": {' '.join(added)}" if added else " (all were there already)")
          + ("" if args.specs else " (the newest finished run)"))


def add(list_name, specs):
    """Append the runs `specs` name to the list, skipping those already there; returns the names
    added. Every spec is checked before anything is written: an unknown run raises UserError, a
    folder without a record that reads is refused when named, skipped with a warning otherwise."""
    check_name(list_name)
    names = [str(run) for run in readable(runs.resolve(specs), specs)]
    path = list_path(list_name)
    try:
        return atomic.append_lines(path, names)
    except UnicodeDecodeError as err:
        raise undecodable(path, err) from None


def readable(found, specs):
    """The runs whose record reads: a folder without one (a crashed copy, a symlink loop) is no
    run to compare in a table."""
    named = set()
    for spec in specs:  # `tag/id`, not a glob: the user asked for this very run
        tag, _, id = spec.partition("/")
        if runs.is_id(id) and not any(c in tag for c in runs.GLOB):
            named.add(runs.Run(tag, int(id)))
    out = []
    for run, rec in runs.records(found, quiet=True):  # quiet: the one line about it is said here
        if isinstance(rec, dict):
            out.append(run)
            continue
        why = f"its {runs.RECORD} {runs.damage(run) or 'is missing'}"
        if run in named:
            raise UserError(f"{run} is no run to record: {why}", f"see `expels {run.tag}`, and record another")
        warn(f"skipped {run}: {why}")
    if not out:
        raise UserError(f"none of {' '.join(specs)[:80]} has a record that reads", "see `expls` for the runs there are")
    return out


def newest_finished():
    """`record` alone: the run that finished last, of every tag (by its end, then its record's time)."""
    best, newest = None, None
    for tag in runs.tags():
        for run, rec in runs.records(runs.of(tag)):
            if isinstance(rec, dict) and rec.get("status") == "finished":
                key = (str(rec.get("end") or ""), mtime(run.dir / runs.RECORD))
                if newest is None or key > newest:
                    best, newest = run, key
    if best is None:
        raise UserError("no finished run to record", "name one: `record <tag>/<id>` (see `expls`)")
    return str(best)


def mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def check_name(list_name):
    if not NAME.fullmatch(list_name):
        raise UserError(f"invalid list name {list_name[:60]!r}{'...' * (len(list_name) > 60)}",
                        "use at most 120 of A-Z a-z 0-9 _ + -, starting with a letter or digit")


def list_path(list_name):
    return paths.exper_list(list_name)


def read(list_name):
    """The run names of a list, in its order. Blank lines and `#` comments are allowed."""
    check_name(list_name)
    path = list_path(list_name)
    if not path.exists():
        raise UserError(f"no experiment list {list_name!r} ({path})",
                        f"add runs to it first: record{'' if list_name == 'record' else ' -l ' + list_name} <tag>")
    text = read_text(path)
    names = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not RUN.fullmatch(line):
            raise UserError(f"{path}:{number}: {line!r} is not a run name tag/id",
                            "fix or delete that line (one tag/id a line)")
        names.append(line)
    if not names:
        raise UserError(f"experiment list {list_name!r} is empty ({path})", "add runs to it: record <tag>")
    return list(dict.fromkeys(names))


def read_text(path):
    """A list's or a title's text; a file that is not UTF-8 is one line naming it."""
    try:
        return path.read_text()
    except UnicodeDecodeError as err:
        raise undecodable(path, err) from None


def load(names):
    """[(name, record)] of the runs whose statistic.json reads; the others are named on stderr."""
    out = []
    for name, rec in runs.records(names):
        if rec is None:
            warn(f"skipped {name}: its {runs.RECORD} is missing or damaged")
        else:
            out.append((name, rec))
    return out


def warn(text):
    print(f"runtag: warning: {text}", file=sys.stderr)
