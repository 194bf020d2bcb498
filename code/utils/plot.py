"""plot: learning curves of runs in one PNG, read from their TensorBoard event files.

`scalars()` is also `utils.statistic.load_scalars`, for notebooks.
"""
import hashlib
import re
from pathlib import Path

import pandas as pd

from utils import paths
from utils.errors import UserError
from utils.statistic import record


def add_plot(p):
    p.add_argument("specs", nargs="+", metavar="TAG[/ID]", help="runs: a run, all runs of a tag, or a quoted glob 'lr*'")
    p.add_argument("--metric", default="val/acc", metavar="KEY", help="the TensorBoard scalar to draw (default: val/acc)")
    p.add_argument("-o", dest="out", metavar="FILE.png", help="where to write (default: __statistic__/plot/<metric>_<runs>.png)")


def plot(args):
    out, _ = curves(args.specs, args.metric, args.out)
    print(shown(out))


def scalars(specs, tags=None):
    """The scalars of the runs as a long DataFrame: run, tag, step, value."""
    return read(record.expand(specs), tags)


def read(names, tags=None):
    """Every event file of each run's tensorboard/ (a continued run adds one), through
    TensorBoard's own reader: it reads a folder's files in order, and where a resumed run
    logged a step again, keeps the newer value as TensorBoard shows it."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    rows = []
    for name in names:
        folder = paths.results() / name / "tensorboard"
        if not folder.is_dir():
            record.warn(f"skipped {name}: it has no {folder}")
            continue
        events = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0})  # 0: keep every point
        events.Reload()
        for tag in events.Tags()["scalars"]:
            if tags is None or tag in tags:
                rows += [(name, tag, e.step, e.value) for e in events.Scalars(tag)]
    return pd.DataFrame(rows, columns=["run", "tag", "step", "value"])


def curves(specs, metric="val/acc", out=None):
    """Draw `metric` of each run as one line; returns (the PNG's path, the Figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # not pyplot: no global state, no GUI, safe in a notebook
    from matplotlib.ticker import MaxNLocator

    names = record.expand(specs)
    data = read(names, [metric])
    if data.empty:
        known = sorted(set(read(names)["tag"]))
        raise UserError(f"no run of {' '.join(specs)} has the scalar {metric!r}",
                        f"choose --metric among: {', '.join(known) or '(none: no event files)'}")
    for name in names:
        if name not in set(data["run"]):
            record.warn(f"{name} has no {metric!r} scalar: left out of the plot")
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, run in data.groupby("run", sort=False):
        run = run.sort_values("step")
        axes.plot(run["step"], run["value"], marker="o" if len(run) <= 40 else None, markersize=3, label=name)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are epochs
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    out = Path(out) if out else default_path(metric, specs)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120, format="png")
    return out, figure


def default_path(metric, specs):
    """__statistic__/plot/<metric>_<specs>.png, made file-name safe (long ones shortened by a hash)."""
    slug = re.sub(r"[^\w.+-]+", "-", "_".join([metric, *specs])).strip("-")
    if len(slug) > 100:
        slug = slug[:90] + "-" + hashlib.sha1(slug.encode()).hexdigest()[:8]
    return paths.statistic() / "plot" / f"{slug}.png"


def shown(path):
    """The path relative to the current directory when it lies below it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
