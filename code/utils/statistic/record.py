"""record: experiment lists, `__statistic__/exper-list/<list>.txt`, one `<tag>/<id>` a line.

Also what title, table, plot and diff share: turning `tag`, `tag/id` and globs of tags into
run names, and reading the records of a list (a damaged one is named and skipped).
"""
import fnmatch
import json
import os
import re
import sys

from utils import atomic, paths, runs
from utils.errors import UserError

# A list's name is a file name: no /, no dot; ASCII; 120 characters hold `sweep-<tag>` (a tag has
# at most 100) and stay clear of the file system's 255 bytes.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]{0,119}")
RUN = re.compile(r"[^/\s]+/[0-9]+")  # not \d: it takes `²` and `٣` too


def add_record(p):
    p.add_argument("-l", dest="list", default="record", metavar="LIST",
                   help="the experiment list to append to (default: record)")
    p.add_argument("specs", nargs="+", metavar="TAG[/ID]",
                   help="a run, all runs of a tag, or a quoted glob of tags: 'lr*'")


def record(args):
    added = add(args.list, args.specs)
    where = list_path(args.list).relative_to(paths.root())
    print(f"recorded {len(added)} run{'s' * (len(added) != 1)} into {where}"
          + (f": {' '.join(added)}" if added else " (all were there already)"))


def add(list_name, specs):
    """Append the runs `specs` name to the list, skipping those already there; returns the names
    added. Every spec is checked before anything is written: an unknown run raises UserError."""
    check_name(list_name)
    names = expand(specs)
    return atomic.append_lines(list_path(list_name), names)


def expand(specs):
    """'tag' (all its runs), 'tag/id', or a glob of tags ('lr*', 'lr*/0') -> ['tag/id', ...],
    in order, without repeats. Globs skip tags starting with `_` (`_debug`) unless asked for."""
    names = []
    for spec in specs:
        tag, sep, id = spec.partition("/")
        if not any(c in tag for c in "*?["):
            dirs = runs.resolve(spec)
            if not dirs:
                raise UserError(f"tag {tag!r} has no runs", "see `expls` for the tags that have runs")
        else:
            matched = [t for t in fnmatch.filter(runs.tags(), tag) if tag.startswith("_") or not t.startswith("_")]
            dirs = [d for t in matched for d in runs.resolve(t) if not id or d.name == id]
            if not dirs:
                raise UserError(f"no run matches {spec!r}", "see `expls` for the tags that have runs")
        names += [f"{d.parent.name}/{d.name}" for d in dirs]
    return list(dict.fromkeys(names))


def check_name(list_name):
    if not NAME.fullmatch(list_name):
        raise UserError(f"invalid list name {list_name[:60]!r}{'...' * (len(list_name) > 60)}",
                        "use at most 120 of A-Z a-z 0-9 _ + -, starting with a letter or digit")


def list_path(list_name):
    return paths.statistic() / "exper-list" / f"{list_name}.txt"


def read(list_name):
    """The run names of a list, in its order. Blank lines and `#` comments are allowed."""
    check_name(list_name)
    path = list_path(list_name)
    if not path.exists():
        raise UserError(f"no experiment list {list_name!r} ({path})",
                        f"add runs to it first: record{'' if list_name == 'record' else ' -l ' + list_name} <tag>")
    names = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
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


def load(names):
    """[(name, record)] of the runs whose statistic.json reads; the others are named on stderr.
    As runs.read, on plain strings: pathlib per file is most of the time over 10,000 runs."""
    base = str(paths.results())
    out = []
    for name in names:
        path = os.path.join(base, name, "statistic.json")
        try:
            with open(path, "rb") as f:
                out.append((name, json.load(f)))
        except (OSError, ValueError):
            warn(f"skipped {name}: {path} is missing or damaged")
    return out


def warn(text):
    print(f"runtag: warning: {text}", file=sys.stderr)
