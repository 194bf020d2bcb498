"""The TensorBoard scalars of runs, as a pandas DataFrame: what `plot` draws, and
`utils.statistic.load_scalars` for notebooks."""
import pandas as pd

from utils import runs
from utils.statistic import record


def scalars(specs, tags=None):
    """The scalars of the runs as a long DataFrame: run, tag, step, value."""
    return read([str(run) for run in runs.resolve(specs)], tags)


def read(names, tags=None):
    """Every event file of each run's tensorboard/ (a continued run adds one), through
    TensorBoard's own reader: it reads a folder's files in order, and where a resumed run
    logged a step again, keeps the newer value as TensorBoard shows it."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    rows = []
    for name in names:
        folder = runs.Run.parse(name).tensorboard
        if not folder.is_dir():
            record.warn(f"skipped {name}: it has no {folder}")
            continue
        events = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0})  # 0: keep every point
        events.Reload()
        for tag in events.Tags()["scalars"]:
            if tags is None or tag in tags:
                rows += [(name, tag, e.step, e.value) for e in events.Scalars(tag)]
    return pd.DataFrame(rows, columns=["run", "tag", "step", "value"])
