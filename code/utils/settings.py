"""The config keys the tooling reads, checked before a run starts; then code/args_process.py's
check() for the researcher's own keys, with the helpers below. A wrong value is one line naming
the key, before anything is tagged or written: whatever passes here runs.

`process()` gives main.py's `args`: the config, checked, with the device resolved.
"""
import os
import re
from types import SimpleNamespace

from utils import paths
from utils.errors import UserError, shown
from utils.overrides import MAX_VALUE
from utils.process import gpus

DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
CLOCK = ("max_steps", "eval_every", "log_every", "warmup_steps")  # config.py of older projects may lack them: 0
NOTIFY_TIMEOUT_S = 30.0  # config notify_timeout where config.py has none (utils/notify.py)


def check(cfg):
    """Validate a config dict (config.py plus overrides); cheap, imports no torch."""
    for key in CLOCK:
        cfg.setdefault(key, 0)
    cfg.setdefault("keep_checkpoints_done", None)  # older config.py files (utils/runner.py trim)
    cfg.setdefault("notify", "")  # older config.py files: no notify (utils/notify.py)
    cfg.setdefault("notify_timeout", NOTIFY_TIMEOUT_S)
    for key, value in cfg.items():
        if isinstance(value, str) and len(value) > MAX_VALUE:  # from a sweep file: the command line checks first
            bad(key, value, f"at most {MAX_VALUE} characters")
    number(cfg, "epochs", "batch_size", "grad_accum", "checkpoint_every", above=0, whole=True)
    number(cfg, "checkpoint_steps", "keep_checkpoints", "patience", low=0, whole=True)
    number(cfg, *CLOCK, low=0, whole=True)
    number(cfg, "checkpoint_copy_mb", low=0)
    number(cfg, "notify_timeout", above=0)
    if not isinstance(cfg["notify"], str):
        bad("notify", cfg["notify"], "a shell command in quotes, or \"\" for none")
    if cfg["keep_checkpoints_done"] is not None:
        number(cfg, "keep_checkpoints_done", low=0, whole=True)
    if cfg.get("checkpoint_interval") is not None:  # None: by the writes' cost (utils/cadence.py)
        number(cfg, "checkpoint_interval", low=0)
    one_of(cfg, "best_mode", ("max", "min"))
    one_of(cfg, "precision", ("fp32", "bf16", "fp16"))
    if not (isinstance(cfg["device"], str) and DEVICE.fullmatch(cfg["device"])):
        bad("device", cfg["device"], "auto, cpu, cuda or cuda:N")
    if cfg["precision"] == "fp16" and not (cfg["device"].startswith("cuda") or cfg["device"] == "auto" and gpus()):
        no_fp16()
    import args_process  # code/args_process.py: the checks of the researcher's own keys
    args_process.check(cfg)


def process(cfg):
    """The arguments main.py uses: the config, checked, plus the device it runs on."""
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
    return args


# --- helpers for args_process.check()

def number(cfg, *keys, low=None, high=None, above=None, below=None, whole=False):
    """Each key a number (not a bool): >= low, <= high, > above, < below, a whole number."""
    for key in keys:
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            bad(key, value, "a number")
        if whole and not float(value).is_integer():
            bad(key, value, "a whole number")
        for bound, ok, words in ((low, value >= (low or 0), ">="), (high, value <= (high or 0), "<="),
                                 (above, value > (above or 0), ">"), (below, value < (below or 0), "<")):
            if bound is not None and not ok:
                bad(key, value, f"a number {words} {bound}")


def one_of(cfg, key, allowed, why=""):
    if cfg[key] not in allowed:
        bad(key, cfg[key], "one of " + ", ".join(map(str, allowed)) + (f" ({why})" if why else ""))


def data_folder(name):
    """Whether `name` is a folder under __data__/ (your own data set)."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
            and os.path.isdir(paths.data() / name))  # isdir: False for a name too long


def bad(key, value, expected):
    raise UserError(f"invalid config value {key}={shown(value, 78)}", f"use {expected}")


def no_fp16():
    bad("precision", "fp16", "fp32 or bf16 on a CPU: fp16 training needs a CUDA device (and its GradScaler)")
