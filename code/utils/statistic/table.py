"""table: one row per run of a list and the title's columns, in `__statistic__/table/<list>.csv`.

`--format md|latex` also writes `<list>.md|.tex`; `--group` folds the runs of each tag and
configuration (its overrides: runs that differ only in their seed) into one row (count, mean and
sample std of each metric) and writes `<list>.group.*` instead; `--group tag` folds every run of
a tag, whatever its overrides. A grouped row's `run` is the tag, then the group's overrides as
`key=value` (sorted by key; none: the tag alone).
The CSV holds full-precision numbers; the terminal, Markdown and LaTeX show 4 significant digits.
"""
import sys
from collections import Counter

import pandas as pd

from utils import atomic, overrides, paths, runs, slurm
from utils.errors import UserError
from utils.statistic import record, title

FORMATS = ("csv", "md", "latex")
GROUPS = ("config", "tag")  # what --group folds on; the first is the default
SUFFIX = {"md": ".md", "latex": ".tex"}
STD = ":std"  # the grouped CSV's column of a metric's standard deviation: "<metric>:std"


def add_table(p):
    p.add_argument("list", nargs="?", default="record", metavar="LIST", help="the experiment list (default: record)")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="csv",
                   help="also write the table as Markdown (.md) or LaTeX (.tex), ready to paste")
    p.add_argument("--sort", metavar="KEY", help="sort by this column, ascending; --sort=-KEY for descending")
    p.add_argument("--group", nargs="?", const=GROUPS[0], choices=GROUPS, metavar="BY",
                   help="one row per tag and configuration (the runs' overrides; seeds vary inside "
                        "a row): number of runs, mean ± std of each metric. --group tag: one row "
                        "per tag, whatever the overrides. Put LIST before --group")


def table(args):
    build(args.list, args.fmt, args.sort, args.group)


def build(list_name, fmt="csv", sort=None, group=False):
    """Write the table files of a list (the title first, if it has none), print the table
    aligned, and return it as a DataFrame (numbers, not text)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown table format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    group = grouping(group)
    loaded = record.load(record.read(list_name))
    if not title.path(list_name).exists():
        title.write(list_name, [rec for _, rec in loaded])
    df, metrics = frame(list_name, loaded, group)
    df = sorted_by(df, sort)
    stem = paths.statistic() / "table" / (list_name + (".group" if group else ""))
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = [stem.with_name(stem.name + ".csv")]  # not with_suffix: "record.group" has one
    atomic.write_text(written[0], df.to_csv(index=False))
    headers, cells = display(df, metrics if group else [])
    if fmt != "csv":
        written.append(stem.with_name(stem.name + SUFFIX[fmt]))
        text = markdown(headers, cells, numeric(df, headers)) if fmt == "md" else latex(headers, cells, numeric(df, headers))
        atomic.write_text(written[-1], text)
    print(aligned(headers, cells, numeric(df, headers)))
    print("runtag: wrote " + ", ".join(str(p.relative_to(paths.root())) for p in written), file=sys.stderr)
    return df


def load(list_name="record", group=False):
    """The table of a list as a DataFrame, as `table` builds it, without writing anything."""
    return frame(list_name, record.load(record.read(list_name)), grouping(group))[0]


def grouping(group):
    """None (a row per run), "config" or "tag", from what build/load accept: False, True
    (the default grouping, "config") or a name in GROUPS."""
    if group is True:
        return GROUPS[0]
    if not group:
        return None
    if group not in GROUPS:
        raise UserError(f"unknown grouping {group!r}", f"use one of {', '.join(GROUPS)}")
    return group


def frame(list_name, loaded, group):
    """(DataFrame, metric columns): one row per loaded run, or per group of runs."""
    records = [rec for _, rec in loaded]
    hparams, metrics = title.columns(list_name, records)
    title.warn_unknown(list_name, (hparams, metrics), records)
    rows, queue = [], slurm.queue_of(records)  # runs in Slurm jobs: their jobs' states, one squeue call
    for name, rec in loaded:  # plain lists, one DataFrame at the end: per-row pandas is slow
        hp, m = rec.get("hparams") or {}, rec.get("metrics") or {}
        rows.append([name, runs.status(rec, queue), *[hp.get(k) for k in hparams], *[m.get(k) for k in metrics]])
    df = pd.DataFrame(rows, columns=["run", "status", *hparams, *metrics])
    df = df.loc[:, ~df.columns.duplicated()]  # a key listed twice in the title is one column
    if not group:
        return df, metrics
    names = pd.Series([group_name(name, rec, group) for name, rec in loaded], index=df.index, dtype=object)
    return fold(df, names, hparams, metrics), metrics


def group_name(name, rec, by):
    """The group of a run, as its row's `run` shows it: the tag, and unless grouped by tag its
    overrides as `key=value`, sorted so that the order they were typed in does not split a
    group. A mean over different configurations is not a result; over seeds it is, so the
    record's seed is not part of it, nor is a `seed` override where a config.py has one."""
    tag = name.partition("/")[0]
    if by == "tag":
        return tag
    changes = {k: v for k, v in sorted((rec.get("overrides") or {}).items()) if k != "seed"}
    return " ".join([tag, *overrides.words(changes)])


def fold(df, names, hparams, metrics):
    """One row per group (`names`, a group name per row of df): run (the group's name), runs
    (how many), status, hyperparameters (the value, or the distinct values joined by ` | `),
    and per metric its mean and sample std (ddof=1)."""
    groups = df.groupby(names, sort=False)
    out = pd.DataFrame({"run": groups.size().index, "runs": groups.size().to_numpy(),
                        "status": groups["status"].agg(statuses).to_numpy()})
    for key in dict.fromkeys(hparams):
        out[key] = groups[key].agg(one_value).to_numpy()
    for key in dict.fromkeys(metrics):
        numbers = pd.to_numeric(df[key], errors="coerce").groupby(names, sort=False)
        out[key] = numbers.mean().to_numpy()
        out[key + STD] = numbers.std(ddof=1).to_numpy()
    return out


def statuses(values):
    counts = Counter(values)
    return next(iter(counts)) if len(counts) == 1 else ", ".join(f"{s} {n}" for s, n in counts.items())


def one_value(values):
    distinct = list(dict.fromkeys(text(v) for v in values))
    return distinct[0] if len(distinct) == 1 else " | ".join(distinct)


def sorted_by(df, sort):
    if not sort:
        return df
    key, descending = (sort[1:], True) if sort.startswith("-") else (sort, False)
    if key not in df.columns:
        raise UserError(f"cannot sort by {key!r}: not a column of the table",
                        f"choose one of: {', '.join(map(str, df.columns[:12]))}{' ...' if len(df.columns) > 12 else ''}")
    try:
        return df.sort_values(key, ascending=not descending, kind="stable", na_position="last", ignore_index=True)
    except TypeError:  # mixed types in one column: sort them as text
        return df.sort_values(key, ascending=not descending, kind="stable", na_position="last",
                              ignore_index=True, key=lambda col: col.astype(str))


def display(df, metrics):
    """(headers, columns of cell text); a grouped metric shows as `mean ± std`."""
    headers, cells = [], []
    for column in df.columns:
        if column.endswith(STD) and column[:-len(STD)] in metrics:
            continue
        values = [text(v) for v in df[column].tolist()]
        if column in metrics and column + STD in df.columns:
            values = [f"{mean} ± {text(std)}" if std == std and mean else mean
                      for mean, std in zip(values, df[column + STD].tolist())]
        headers.append(column)
        cells.append(values)
    return headers, cells


def text(value):
    """A cell as shown: floats to 4 significant digits, missing values blank."""
    if isinstance(value, float):  # first: most cells are metrics
        if value != value:  # NaN
            return ""
        shown = f"{value:.4g}"
        return f"{value:.0f}" if "e" in shown and abs(value) >= 1 else shown  # 12346, not 1.235e+04
    return "" if value is None or value != value else str(value)


def numeric(df, headers):
    """Which shown columns hold numbers, to align them right."""
    return [pd.api.types.is_numeric_dtype(df[h]) and not pd.api.types.is_bool_dtype(df[h]) for h in headers]


def aligned(headers, cells, right):
    widths = [max([len(h), *map(len, col)]) for h, col in zip(headers, cells)]

    def line(items):
        return "  ".join(s.rjust(w) if r else s.ljust(w) for s, w, r in zip(items, widths, right)).rstrip()

    return "\n".join([line(headers), *(line(row) for row in zip(*cells))])


def markdown(headers, cells, right):
    def line(items):
        return "| " + " | ".join(s.replace("|", "\\|") for s in items) + " |"

    rule = "| " + " | ".join("---:" if r else "---" for r in right) + " |"
    return "\n".join([line(headers), rule, *(line(row) for row in zip(*cells))]) + "\n"


def latex(headers, cells, right):
    """A booktabs tabular, through pandas' Styler (it escapes LaTeX's special characters)."""
    shown = pd.DataFrame(dict(zip(range(len(headers)), cells)))
    shown.columns = headers
    styler = shown.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    tex = styler.to_latex(hrules=True, column_format="".join("r" if r else "l" for r in right))
    return tex.replace("±", r"$\pm$")
