"""Check the config and derive what follows from it. A wrong value is one line naming the key."""
import ast
import functools
import os
import re
from pathlib import Path
from types import SimpleNamespace

from utils import paths
from utils.process import gpus
from utils.errors import UserError, shown
from utils.overrides import MAX_VALUE

CHOICES = {
    "optimizer": ("adam", "adamw", "sgd"),
    "lr_schedule": ("none", "step", "cosine"),
    "best_mode": ("max", "min"),
    "precision": ("fp32", "bf16", "fp16"),
}
POSITIVE = ("lr", "epochs", "batch_size", "checkpoint_every", "channels", "width", "lr_step", "grad_accum")
NON_NEGATIVE = ("checkpoint_interval", "checkpoint_steps", "checkpoint_copy_mb", "patience", "keep_checkpoints",
                "num_workers", "weight_decay", "momentum", "clip_grad", "figure_every")
COUNTS = ("epochs", "batch_size", "checkpoint_every", "checkpoint_steps", "keep_checkpoints", "num_workers", "patience",
          "grad_accum", "width", "figure_every")
NUMBERS = POSITIVE + NON_NEGATIVE + ("dropout", "val_ratio", "test_ratio", "lr_gamma", "split_seed")
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def check(cfg):
    """Validate a config dict (config.py plus overrides); cheap, imports no torch. Whatever
    passes here runs: a value the run would only trip over later would leave a tag and a
    `failed` run behind for a typo."""
    check_types(cfg)
    for key, allowed in CHOICES.items():
        if cfg[key] not in allowed:
            bad(key, cfg[key], "one of " + ", ".join(allowed))
    for key in POSITIVE:
        if not cfg[key] > 0:
            bad(key, cfg[key], "a number > 0")
    for key in NON_NEGATIVE:
        if not cfg[key] >= 0:
            bad(key, cfg[key], "a number >= 0")
    for key in COUNTS:
        if not float(cfg[key]).is_integer():
            bad(key, cfg[key], "a whole number")
    if not 0 <= cfg["dropout"] < 1:
        bad("dropout", cfg["dropout"], "a number in [0, 1)")
    if not (0 < cfg["val_ratio"] and 0 < cfg["test_ratio"] and cfg["val_ratio"] + cfg["test_ratio"] < 1):
        bad("val_ratio", (cfg["val_ratio"], cfg["test_ratio"]), "val_ratio, test_ratio > 0 with a sum < 1")
    if not (isinstance(cfg["device"], str) and DEVICE.fullmatch(cfg["device"])):
        bad("device", cfg["device"], "auto, cpu, cuda or cuda:N")
    if cfg["precision"] == "fp16" and not (cfg["device"].startswith("cuda") or cfg["device"] == "auto" and gpus()):
        no_fp16()
    check_names(cfg)


def check_types(cfg):
    for key, value in cfg.items():
        if isinstance(value, str) and len(value) > MAX_VALUE:  # from a sweep file: the command line checks first
            bad(key, value, f"at most {MAX_VALUE} characters")
    for key in NUMBERS:  # None passes the type check of overrides (a default may be None)
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], (int, float)):
            bad(key, cfg[key], "a number")


def check_names(cfg):
    """The data set and the model are looked up by name only once the run has started."""
    data = cfg["data"]
    if data not in tasks() and not (isinstance(data, str) and data not in ("", ".", "..") and "/" not in data
                                 and os.path.isdir(paths.data() / data)):  # isdir: False for a name too long
        bad("data", data, ", ".join(tasks()) + ", or the name of a folder under __data__/ (see dataloader.py)")
    models = known_models()
    if models and cfg["model"] not in models:
        bad("model", cfg["model"], "one of " + ", ".join(sorted(models)) + " (the names model.build() knows)")
    names = metrics().get(task(data), ())
    reported = [f"{split}/{name}" for split in ("train", "val") for name in names]
    if reported and cfg["best_metric"] not in reported:
        bad("best_metric", cfg["best_metric"], f"one of {', '.join(reported)} (what epoch.py reports for {data})")


def task(data):
    """classification | regression: dataloader.TASKS for a bundled data set, else the type of y in
    __data__/<data>/data.npz (whole numbers: classes)."""
    if data in tasks():
        return tasks()[data]
    try:
        import numpy as np
        with np.load(paths.data() / data / "data.npz") as arrays:
            kind = arrays["y"].dtype.kind
    except (OSError, KeyError, ValueError):
        return "classification"  # dataloader.load() is yours to change: it reads what it reads
    return "classification" if kind in "iub" else "regression"


def tasks():
    return read_constant("dataloader.py", "TASKS") or {"digits": "classification"}


def metrics():
    return read_constant("epoch.py", "METRICS") or {}


@functools.cache
def read_constant(file, name):
    """A module-level `NAME = <literal>` of a template file, read, not imported (torch takes
    seconds to import); None when it is not there as a literal."""
    try:
        tree = ast.parse(Path(__file__).with_name(file).read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [name]:
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return None
    return None


def no_fp16():
    bad("precision", "fp16", "fp32 or bf16 on a CPU: fp16 training needs a CUDA device (and its GradScaler)")


@functools.cache
def known_models():
    """The names model.build() knows: the strings model.py compares `args.model` with. Read,
    not imported: importing torch takes seconds. Empty when it names none that way (a registry
    of its own, or a model.py that does not parse): then build() alone decides."""
    try:
        tree = ast.parse(Path(__file__).with_name("model.py").read_text())
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and ast.unparse(node.left) == "args.model":
            names.update(c.value for side in node.comparators for c in ast.walk(side)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return frozenset(names)


def bad(key, value, expected):
    raise UserError(f"invalid config value {key}={shown(value, 78)}", f"use {expected}")


def process(cfg):
    """The arguments main.py uses: the config, checked, plus derived values."""
    import torch

    check(cfg)
    args = SimpleNamespace(**cfg)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        bad("device", args.device, "cpu or auto: no CUDA device is visible")
    args.cuda = args.device.startswith("cuda")
    if args.precision == "fp16" and not args.cuda:  # device=auto found no CUDA after all
        no_fp16()
    args.pin_memory = args.cuda  # page-locked batches make the non_blocking copies real
    args.task = task(args.data)  # classification | regression: which metrics and loss epoch.py uses
    return args
