"""Comparison with confidence, for `table --group` (frame.py): per metric, the 95% confidence
interval of each group's mean (Student's t: mean ± t_{0.975,n-1}·s/√n), and with `--vs GROUP`
each other group's difference of means to that baseline, its 95% Welch interval (Welch–
Satterthwaite degrees of freedom) and Welch's two-sided t-test p-value.

The columns come after the grouped table's existing ones, so a grouped CSV's first columns stay
what they were: `<metric>:n` (the runs that have it), `:ci_low`, `:ci_high`; with --vs `:diff`,
`:diff_low`, `:diff_high`, `:p` and `:sig` (True where the interval excludes 0). A group of one
run has no spread, hence no interval (NaN; shown `n=1`). scipy only for the t distribution.
"""
import numpy as np

from utils.errors import UserError
from utils.statistic.cells import text

LEVEL = 0.95
N, LOW, HIGH = ":n", ":ci_low", ":ci_high"
DIFF, DIFF_LOW, DIFF_HIGH, P, SIG = ":diff", ":diff_low", ":diff_high", ":p", ":sig"
CI = ":ci95"  # shown only: the interval `[low, high]` in one cell
EXTRA = (N, LOW, HIGH, DIFF, DIFF_LOW, DIFF_HIGH, P, SIG)  # the suffixes of the columns added here


def quantile(df):
    """t_{(1+LEVEL)/2, df} (NaN where df < 1 or is NaN)."""
    from scipy import stats  # imported when used: only --group needs it
    df = np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(df >= 1, stats.t.ppf((1 + LEVEL) / 2, np.where(df >= 1, df, 1)), np.nan)


def of_mean(count, std):
    """Half the width of the interval of each mean, from each group's count and sample std."""
    count, std = np.asarray(count, dtype=float), np.asarray(std, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return quantile(count - 1) * std / np.sqrt(count)


def interval(out, key, count):
    """Add `key`'s n and interval columns to the grouped frame `out` (its mean and std there)."""
    half = of_mean(count, out[key + ":std"])
    out[key + N] = np.asarray(count, dtype=int)
    out[key + LOW] = out[key].to_numpy() - half
    out[key + HIGH] = out[key].to_numpy() + half


def welch(mean, std, count, base):
    """(difference, half width, p-value) of each group's mean against the row `base`'s."""
    from scipy import stats
    mean, std, count = (np.asarray(a, dtype=float) for a in (mean, std, count))
    with np.errstate(invalid="ignore", divide="ignore"):
        var = std ** 2 / count  # each mean's variance estimate
        se = np.sqrt(var + var[base])
        df = (var + var[base]) ** 2 / (var ** 2 / (count - 1) + var[base] ** 2 / (count[base] - 1))
        diff = mean - mean[base]
        t = diff / se
        p = np.where(np.isfinite(t) & (df > 0), 2 * stats.t.sf(np.abs(t), np.where(df > 0, df, 1)), np.nan)
        return diff, quantile(df) * se, p


def versus(out, key, count, base):
    """Add `key`'s difference columns against the baseline row `base` (blank in that row)."""
    diff, half, p = welch(out[key], out[key + ":std"], count, base)
    low, high = diff - half, diff + half
    sig = [None if i == base or low[i] != low[i] else bool(low[i] > 0 or high[i] < 0) for i in range(len(diff))]
    for suffix, values in ((DIFF, diff), (DIFF_LOW, low), (DIFF_HIGH, high), (P, p)):
        values = values.copy()
        values[base] = np.nan
        out[key + suffix] = values
    out[key + SIG] = sig


def baseline(names, vs):
    """The row of the group `vs` names: its whole name (`lra lr=0.1`), or a tag that is one group's."""
    names = list(names)
    if vs in names:
        return names.index(vs)
    of_tag = [i for i, name in enumerate(names) if name.partition(" ")[0] == vs]
    if len(of_tag) == 1:
        return of_tag[0]
    shown = ", ".join(repr(n) for n in names[:6]) + (" ..." if len(names) > 6 else "")
    what = f"tag {vs!r} has {len(of_tag)} groups" if of_tag else f"no group {vs!r} in the table"
    raise UserError(f"--vs: {what}", f"name one group as its row's `run` shows it: {shown or 'none'}")


def shown_interval(n, low, high):
    if n == 1:
        return "n=1"
    return "" if low != low else f"[{text(low)}, {text(high)}]"


def shown_diff(row, key, base):
    """`+0.012 [0.004, 0.020] *`: the difference, its interval, `*` where it excludes 0."""
    if row is base:
        return "baseline"
    diff, low, high = row[key + DIFF], row[key + DIFF_LOW], row[key + DIFF_HIGH]
    if diff != diff:
        return ""
    shown = ("+" if diff > 0 else "") + text(diff)
    if low != low:
        ones = row[key + N] < 2 or base[key + N] < 2
        return shown + (" (n=1)" if ones else "")
    return f"{shown} [{text(low)}, {text(high)}]" + (" *" if row[key + SIG] else "")
