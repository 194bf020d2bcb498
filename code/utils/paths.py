"""Where things are: the project root holds code/, __data__/, __result__/, __statistic__/."""
import os
from pathlib import Path

CODE = Path(__file__).resolve().parent.parent


def root():
    """The checkout whose __result__ we write into; RUNTAG_ROOT points a worktree back at it."""
    return Path(os.environ.get("RUNTAG_ROOT") or CODE.parent).resolve()


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
