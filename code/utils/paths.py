"""Where things are: the project root holds code/, __data__/, __result__/, __statistic__/."""
import functools
import os
from pathlib import Path

CODE = Path(__file__).resolve().parent.parent


def root():
    """The checkout whose __result__ we write into; RUNTAG_ROOT points a worktree back at it."""
    return resolved(os.environ.get("RUNTAG_ROOT") or str(CODE.parent))


@functools.lru_cache(maxsize=8)
def resolved(path):
    return Path(path).resolve()  # a few stat calls: listing 10,000 runs asks thousands of times


def results():
    return root() / "__result__"


def statistic():
    return root() / "__statistic__"


def data():
    return root() / "__data__"


def lists():
    """The experiment lists: one run name `tag/id` a line (see utils/statistic/record.py)."""
    return statistic() / "exper-list"


def exper_list(name):
    return lists() / f"{name}.txt"
