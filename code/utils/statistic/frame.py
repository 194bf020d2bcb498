"""The table as a pandas DataFrame, for what needs one: `--group` (mean and std per group),
`--sort`, LaTeX (pandas' Styler), `build()` and `load_table` in Python. Imported only then: the
plain `table` streams its rows (output.py) and never imports pandas."""
from collections import Counter

import pandas as pd

from utils.errors import UserError
from utils.statistic import confidence
from utils.statistic.cells import text

STD = ":std"  # the grouped CSV's column of a metric's standard deviation: "<metric>:std"


def frame(reader, rows, statuses, hparams, metrics, vs=None):
    """(DataFrame, metric columns): one row per run read (`rows`, from `reader`), or per group
    (`vs`: the baseline group of the differences, confidence.py)."""
    for row, status in statuses.items():
        rows[row][1] = status
    df = pd.DataFrame(rows, columns=reader.header)
    if not reader.group:
        return df, metrics
    names = pd.Series(reader.groups, index=df.index, dtype=object)
    out = fold(df, names, hparams, metrics, vs)
    if reader.notes:
        out["note"] = newest_notes(df["note"], reader.times, names)
    return out, metrics


def newest_notes(texts, times, names):
    """Each group's newest note (blank for a group without any), in the groups' order."""
    newest = {}
    for name, text, time in zip(names, texts, times):
        if time is not None and (name not in newest or time > newest[name][0]):
            newest[name] = (time, text)
    return [newest.get(name, (None, None))[1] for name in dict.fromkeys(names)]


def fold(df, names, hparams, metrics, vs=None):
    """One row per group (`names`, a group name per row of df): run (the group's name), runs
    (how many), status, hyperparameters (the value, or the distinct values joined by ` | `),
    and per metric its mean and sample std (ddof=1); then, after those, per metric its count,
    95% interval and with `vs` the difference to that group (confidence.py)."""
    groups = df.groupby(names, sort=False)
    out = pd.DataFrame({"run": groups.size().index, "runs": groups.size().to_numpy(),
                        "status": groups["status"].agg(statuses).to_numpy()})
    for key in dict.fromkeys(hparams):
        out[key] = groups[key].agg(one_value).to_numpy()
    counts = {}
    for key in dict.fromkeys(metrics):
        numbers = pd.to_numeric(df[key], errors="coerce").groupby(names, sort=False)
        out[key] = numbers.mean().to_numpy()
        out[key + STD] = numbers.std(ddof=1).to_numpy()
        counts[key] = numbers.count().to_numpy()
    base = None if vs is None else confidence.baseline(out["run"], vs)
    for key, count in counts.items():
        confidence.interval(out, key, count)
        if base is not None:
            confidence.versus(out, key, count, base)
    return out


def statuses(values):
    counts = Counter(values)
    return next(iter(counts)) if len(counts) == 1 else ", ".join(f"{s} {n}" for s, n in counts.items())


def one_value(values):
    distinct = list(dict.fromkeys(text(v) for v in values))
    return distinct[0] if len(distinct) == 1 else " | ".join(distinct)


def sort_key(sort, columns):
    """(key, descending) of `--sort KEY` / `--sort=-KEY`; a key that is no column is a UserError."""
    key, descending = (sort[1:], True) if sort.startswith("-") else (sort, False)
    if key not in columns:
        raise UserError(f"cannot sort by {key!r}: not a column of the table",
                        f"choose one of: {', '.join(map(str, columns[:12]))}{' ...' if len(columns) > 12 else ''}")
    return key, descending


def sorted_by(df, sort):
    if not sort:
        return df
    key, descending = sort_key(sort, list(df.columns))
    try:
        return df.sort_values(key, ascending=not descending, kind="stable", na_position="last", ignore_index=True)
    except TypeError:  # mixed types in one column: sort them as text
        return df.sort_values(key, ascending=not descending, kind="stable", na_position="last",
                              ignore_index=True, key=lambda col: col.astype(str))


def display(df, metrics, vs=None):
    """(headers, columns of cell text); a grouped metric shows as `mean ± std`, then its n and
    95% interval, and with `vs` (the baseline group's name) its difference and p-value."""
    headers, cells = [], []
    added = {key + suffix for key in metrics for suffix in (STD, *confidence.EXTRA)}
    for column in df.columns:
        if column in added:
            continue
        values = [text(v) for v in df[column].tolist()]
        if column in metrics and column + STD in df.columns:
            values = [f"{mean} ± {text(std)}" if std == std and mean else mean
                      for mean, std in zip(values, df[column + STD].tolist())]
        headers.append(column)
        cells.append(values)
        if column in metrics and column + confidence.N in df.columns:
            beside(headers, cells, df, column, vs)
    return headers, cells


def beside(headers, cells, df, key, vs):
    """The shown columns after a grouped metric's: `<key>:n`, `<key>:ci95`, `<key>:diff`, `<key>:p`."""
    rows = df.to_dict("records")
    headers += [key + confidence.N, key + confidence.CI]
    cells.append([str(row[key + confidence.N]) for row in rows])
    cells.append([confidence.shown_interval(row[key + confidence.N], row[key + confidence.LOW],
                                            row[key + confidence.HIGH]) for row in rows])
    if vs is not None and key + confidence.DIFF in df.columns:
        base = rows[confidence.baseline([row["run"] for row in rows], vs)]
        headers += [key + confidence.DIFF, key + confidence.P]
        cells.append([confidence.shown_diff(row, key, base) for row in rows])
        cells.append([text(row[key + confidence.P]) for row in rows])


def numeric(df, headers):
    """Which shown columns hold numbers, to align them right."""
    return [h in df.columns and pd.api.types.is_numeric_dtype(df[h]) and not pd.api.types.is_bool_dtype(df[h])
            for h in headers]  # a shown-only column (`<metric>:ci95`) is text


def latex(headers, cells, right):
    """A booktabs tabular, through pandas' Styler (it escapes LaTeX's special characters)."""
    shown = pd.DataFrame(dict(zip(range(len(headers)), cells)))
    shown.columns = headers
    styler = shown.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    tex = styler.to_latex(hrules=True, column_format="".join("r" if r else "l" for r in right))
    return tex.replace("±", r"$\pm$")
