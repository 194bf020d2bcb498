"""What an `eval` asks for, checked before anything runs: the checkpoint (`best`, `last`,
`epoch_<n>[_step_<k>]`), the eval's overrides (only keys that choose what is scored, never how the
run trained), the split, the function, the name its metrics go under, and each run's own checks
(ended, its checkpoint there, the name free unless --force). A mistake anywhere: one line, exit 2,
before any run is scored or any record touched."""
import os
import re

from utils import checkpoints, overrides, runlock, runs, schema, settings
from utils.amend import alive
from utils.evaluation import entry
from utils.errors import UserError, shown

SPLITS = ("test", "val", "train")
# What an eval may change: the data it scores and how it computes. Every other key shaped the
# weights (lr, epochs, optimizer) or the model they fit (channels, model): refused.
KEYS = ("data", "split", "val_ratio", "test_ratio", "split_seed", "batch_size", "precision", "device", "num_workers")
DEFAULT_FN = "epoch.evaluate"  # what main.py's train(run) computes its test metrics with
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+,-]{0,99}")  # a part of a metric's key: no `/`
FN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def checkpoint_file(choice):
    """`best`, `last`, `epoch_3`, `epoch_3_step_40` as the file name in checkpoint/."""
    if choice in ("best", "last"):
        return runs.BEST if choice == "best" else runs.LAST
    if checkpoints.position(f"{choice}.pth"):
        return f"{choice}.pth"
    raise UserError(f"unknown checkpoint {shown(choice)}", "give best, last, epoch_<n> or epoch_<n>_step_<k>")


def eval_overrides(words, config):
    """The eval's `key=value` words: parsed against config.py (plus `split`), only KEYS allowed.
    (the overrides for the config, the split)"""
    changes = overrides.parse(words, {**config, "split": "test"})
    refused = [key for key in changes if key not in KEYS]
    if refused:
        raise UserError(f"{refused[0]} is not a key eval may change: it shaped the run's weights or the model they fit",
                        f"give only {', '.join(KEYS)}")
    split = changes.pop("split", "test")
    if split not in SPLITS:
        raise UserError(f"invalid split {shown(split)}", f"use one of {', '.join(SPLITS)}")
    return changes, split


def function(name):
    """`--fn NAME`: a function of code/evaluate.py, or `module.function` of a module in code/."""
    if name is None:
        return DEFAULT_FN
    if not FN.fullmatch(name):
        raise UserError(f"invalid function name {shown(name)}", "name a function of code/evaluate.py, or module.function")
    return name if "." in name else f"evaluate.{name}"


def default_name(changes, fn):
    """The name its metrics go under: the function's (if not the template's), then the overrides
    (`data=digits` is `digits`, others `key=value`), joined by `-`; `default` for none."""
    parts = [] if fn == DEFAULT_FN else [fn.removeprefix("evaluate.")]
    parts += [overrides.text(v) if k == "data" else f"{k}={overrides.text(v)}" for k, v in sorted(changes.items())]
    name = "-".join(parts) or "default"
    return re.sub(r"[^A-Za-z0-9._=+,-]", "_", name)[:100]


def check_name(name):
    if not NAME.fullmatch(name):
        raise UserError(f"invalid eval name {shown(name)}", "use at most 100 of A-Z a-z 0-9 . _ = + , - (no /)")
    return name


def ready(run, file, name, split, force):
    """The run's record, if it may be scored now: ended, the checkpoint there, the name free."""
    if runlock.locked(run.dir):
        raise UserError(f"{run} is running right now on this host: its own process writes its record",
                        "wait for it to end")
    record = runs.load(run.dir / runs.RECORD, str(run), quiet=True, required=schema.REQUIRED)
    if record is None:
        why = runs.damage(run) or "is missing"
        raise UserError(f"the record of {run} {why} ({run.dir / runs.RECORD})", "fix it, or choose another run")
    alive(run, record)
    path = run.checkpoints / file
    if not os.path.exists(path):  # a link to a file gone counts as none
        raise UserError(f"{run} has no checkpoint {file}{checkpoints.removed_said(record)}",
                        f"see `ls {path.parent}` for the ones it has")
    entry.refuse_taken(run, record, name, split, force)
    return record


def check_config(config, record, changes):
    """The run's config with its overrides, then the eval's, as `run` checks it: one line if wrong."""
    settings.check(overrides.apply(config, {**record["overrides"], **changes}))


def resolved(path):
    """The file a link names (epoch_best.pth -> epoch_3.pth): the provenance names the real file."""
    return os.path.basename(os.path.realpath(path))
