"""plot: learning curves of runs in one PNG, read from their TensorBoard event files."""
import hashlib
import re
from pathlib import Path

from utils import atomic, paths, runs
from utils.errors import UserError
from utils.statistic import record, scalars


def add_plot(p):
    p.add_argument("specs", nargs="+", metavar="TAG[/ID]", help="runs: a run, all runs of a tag, or a quoted glob 'lr*'")
    p.add_argument("--metric", default="val/acc", metavar="KEY", help="the TensorBoard scalar to draw (default: val/acc)")
    p.add_argument("-o", dest="out", metavar="FILE.png", help="where to write (default: __statistic__/plot/<metric>_<runs>.png)")


def plot(args):
    out, _ = curves(args.specs, args.metric, args.out)
    print(shown(out))


def curves(specs, metric="val/acc", out=None):
    """Draw `metric` of each run as one line; returns (the PNG's path, the Figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # not pyplot: no global state, no GUI, safe in a notebook
    from matplotlib.ticker import MaxNLocator

    names = [str(run) for run in runs.resolve(specs)]
    data = scalars.read(names, [metric])
    if data.empty:
        known = sorted(set(scalars.read(names)["tag"]))
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
    with atomic.writing(out) as f:  # a full disk leaves no half a PNG, and the message names it
        figure.savefig(f, dpi=120, format="png")
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
