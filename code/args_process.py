"""Your config keys' checks, run before a run starts (utils/settings.py checks the tooling's own
keys, then calls check()). A wrong value is one line naming the key, before anything is tagged.
Plain tables: `run` reads them without importing torch.
"""
from utils.settings import bad, data_folder, number, one_of

MODELS = ("cnn", "mlp", "gpt")  # the names model.build() knows
METRICS = {"digits": ("loss", "acc"), "diabetes": ("loss", "mse", "mae"),
           "stdlib": ("loss", "acc")}  # what epoch.py reports per data set


def check(cfg):
    one_of(cfg, "optimizer", ("adam", "adamw", "sgd"))
    one_of(cfg, "lr_schedule", ("none", "step", "cosine"))
    number(cfg, "lr", "lr_step", above=0)
    number(cfg, "channels", "width", "layers", "heads", "context", above=0, whole=True)
    number(cfg, "num_workers", "figure_every", low=0, whole=True)
    number(cfg, "weight_decay", "momentum", "clip_grad", low=0)
    number(cfg, "lr_gamma", "split_seed")
    number(cfg, "dropout", low=0, below=1)
    number(cfg, "val_ratio", "test_ratio", above=0)
    if not cfg["val_ratio"] + cfg["test_ratio"] < 1:
        bad("val_ratio", (cfg["val_ratio"], cfg["test_ratio"]), "val_ratio, test_ratio > 0 with a sum < 1")
    if cfg["data"] not in METRICS and not data_folder(cfg["data"]):
        bad("data", cfg["data"], ", ".join(METRICS) + ", or the name of a folder under __data__/ (see dataloader.py)")
    one_of(cfg, "model", MODELS, "the names model.build() knows")
    language_model(cfg)
    names = METRICS.get(cfg["data"], METRICS["digits"] if classes(cfg["data"]) else METRICS["diabetes"])
    reported = [f"{split}/{name}" for split in ("train", "val") for name in names]
    one_of(cfg, "best_metric", reported, f"what epoch.py reports for {cfg['data']}")


def language_model(cfg):
    """model=gpt reads characters (data=stdlib), and data=stdlib is read by model=gpt only."""
    if cfg["model"] == "gpt" and cfg["data"] != "stdlib":
        bad("model", "gpt", "model=gpt with data=stdlib (a language model reads characters), or cnn/mlp")
    if cfg["data"] == "stdlib" and cfg["model"] != "gpt":
        bad("data", "stdlib", "data=stdlib with model=gpt (windows of characters need a language model)")
    if cfg["model"] == "gpt" and cfg["width"] % cfg["heads"]:
        bad("width", cfg["width"], f"a multiple of heads={cfg['heads']} (each head gets width/heads of it)")


def classes(data):
    """Whether your own data set's y are classes (whole numbers) or values to predict."""
    from utils import paths
    import numpy as np
    try:
        with np.load(paths.data() / data / "data.npz") as arrays:
            return arrays["y"].dtype.kind in "iub"
    except (OSError, KeyError, ValueError):
        return True
