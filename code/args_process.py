"""Check the config and derive what follows from it. A wrong value is one line naming the key."""
from types import SimpleNamespace

from utils.errors import UserError

CHOICES = {
    "optimizer": ("adam", "adamw", "sgd"),
    "lr_schedule": ("none", "step", "cosine"),
    "best_mode": ("max", "min"),
}
POSITIVE = ("lr", "epochs", "batch_size", "checkpoint_every", "channels", "lr_step")
NON_NEGATIVE = ("checkpoint_interval", "patience", "keep_checkpoints", "num_workers", "weight_decay", "momentum")


def check(cfg):
    """Validate a config dict (config.py plus overrides); cheap, imports no torch."""
    for key, allowed in CHOICES.items():
        if cfg[key] not in allowed:
            bad(key, cfg[key], "one of " + ", ".join(allowed))
    for key in POSITIVE:
        if not cfg[key] > 0:
            bad(key, cfg[key], "a number > 0")
    for key in NON_NEGATIVE:
        if not cfg[key] >= 0:
            bad(key, cfg[key], "a number >= 0")
    if not 0 <= cfg["dropout"] < 1:
        bad("dropout", cfg["dropout"], "a number in [0, 1)")
    if not (0 < cfg["val_ratio"] and 0 < cfg["test_ratio"] and cfg["val_ratio"] + cfg["test_ratio"] < 1):
        bad("val_ratio", (cfg["val_ratio"], cfg["test_ratio"]), "val_ratio, test_ratio > 0 with a sum < 1")
    if not str(cfg["device"]).startswith(("auto", "cpu", "cuda")):
        bad("device", cfg["device"], "auto, cpu, cuda or cuda:N")


def bad(key, value, expected):
    raise UserError(f"invalid config value {key}={value!r}", f"use {expected}")


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
    args.pin_memory = args.cuda  # page-locked batches make the non_blocking copies real
    return args
