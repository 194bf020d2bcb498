"""Where things are: the project root holds code/, __data__/, __result__/, __statistic__/."""
import functools
import os
import sys
from pathlib import Path

CODE = Path(__file__).resolve().parent.parent


def root():
    """The checkout whose __result__ we write into; RUNTAG_ROOT points a worktree back at it."""
    return resolved(os.environ.get("RUNTAG_ROOT") or str(CODE.parent))


@functools.lru_cache(maxsize=8)
def resolved(path):
    return Path(path).resolve()  # a few stat calls: listing 10,000 runs asks thousands of times


def results():
    """__result__, resolved once: it may be a symlink to another disk, and every run folder is
    compared against this one path (runs.Run.at)."""
    return resolved(f"{root()}/__result__")


def statistic():
    return root() / "__statistic__"


def data():
    return root() / "__data__"


def lists():
    """The experiment lists: one run name `tag/id` a line (see utils/statistic/record.py)."""
    return statistic() / "exper-list"


def exper_list(name):
    return lists() / f"{name}.txt"


def subfolders(directory):
    """The names of a folder's subfolders (links to folders too), hidden ones left out, in one
    directory read. An entry that cannot be looked at (a symlink loop, a broken link, no
    permission) is skipped with a warning: it never hides the others."""
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    found.append(entry.name)
                elif entry.is_symlink():
                    skipped(entry.path, "is a broken link", "skipped; remove it or fix its target")
            except OSError as err:
                skipped(entry.path, f"is unreadable ({err.strerror or err})", "skipped; remove it or fix it")
    return found


SAID = set()  # what this command has warned about already: one warning per thing, however often it is read


def skipped(path, what, todo):
    """Warn once, on stderr, that something under the project's folders is passed over."""
    if path not in SAID:
        SAID.add(path)
        print(f"runtag: warning: {path} {what} — {todo}", file=sys.stderr)
