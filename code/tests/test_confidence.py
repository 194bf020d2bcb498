"""Issue 27, comparison with confidence: `table --group` gives each metric's n and the 95%
interval of its mean (Student's t), `--vs GROUP` each other group's difference to GROUP, its Welch
interval, Welch's p-value and a mark where the interval excludes 0; a group of one run says n=1.
Every number is checked against the formulas computed here by hand: the t distribution's CDF is
its density integrated numerically (Simpson), checked itself against tabulated quantiles; scipy,
which the table uses, is never called here."""
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/

from conftest import assert_one_line_mistake  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.statistic import load_table, record, table  # noqa: E402

CLI = Path(__file__).resolve().parents[1] / "utils" / "cli.py"
GROUPS = {"a": (0.1, [0.91, 0.93, 0.90, 0.95, 0.92]),  # the baseline: 5 runs
          "b": (0.2, [0.94, 0.96, 0.97]),  # clearly better: its interval excludes 0
          "d": (0.3, [0.90, 0.95, 0.93]),  # not distinguishable from a
          "c": (0.4, [0.99])}  # one run: no spread, no interval


# --- the t distribution by hand ---------------------------------------------------------------

def density(x, df):
    return math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi) \
        * (1 + x * x / df) ** (-(df + 1) / 2)


def cdf(x, df, steps=20_000):
    """P(T <= x), x >= 0: 1/2 plus Simpson's rule over [0, x]."""
    h = x / steps
    total = density(0, df) + density(x, df) + sum((4 if i % 2 else 2) * density(i * h, df) for i in range(1, steps))
    return 0.5 + total * h / 3


def quantile(p, df):
    """x with cdf(x) = p (p > 1/2), by bisection."""
    low, high = 0.0, 60.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid, df, 4000) < p else (low, mid)
    return (low + high) / 2


def test_the_hand_made_t_distribution_matches_the_tables():
    for df, t in ((1, 12.706205), (2, 4.302653), (4, 2.776445), (10, 2.228139), (30, 2.042272)):
        assert quantile(0.975, df) == pytest.approx(t, abs=2e-4)
    assert 2 * (1 - cdf(2.776445, 4)) == pytest.approx(0.05, abs=1e-6)


def mean(xs):
    return sum(xs) / len(xs)


def sd(xs):
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def welch(x, base):
    """(difference, half width of the 95% interval, two-sided p) of mean(x) - mean(base)."""
    vx, vb = sd(x) ** 2 / len(x), sd(base) ** 2 / len(base)
    df = (vx + vb) ** 2 / (vx ** 2 / (len(x) - 1) + vb ** 2 / (len(base) - 1))  # Welch–Satterthwaite
    se, diff = math.sqrt(vx + vb), mean(x) - mean(base)
    return diff, quantile(0.975, df) * se, 2 * (1 - cdf(abs(diff) / se, df))


# --- the table --------------------------------------------------------------------------------

def write(root, tag, id, lr, acc):
    """A record of DESIGN.md's schema with a known test/acc (and test/loss = 1 - acc)."""
    folder = root / "__result__" / tag / str(id)
    folder.mkdir(parents=True)
    rec = {"version": 1, "tag": tag, "id": id, "status": "finished", "commit": "0" * 40, "command": f"run {tag}",
           "seed": id, "fixed_seed": False, "overrides": {"lr": lr}, "hparams": {"lr": lr, "epochs": 3},
           "metrics": {"test/acc": acc, "test/loss": 1 - acc}, "epoch": 3, "epochs": 3, "duration_s": 1.0,
           "host": "elsewhere", "pid": 1, "world_size": 1}
    (folder / "statistic.json").write_text(json.dumps(rec))


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNTAG_ROOT", str(tmp_path))
    for tag, (lr, accs) in GROUPS.items():
        for id, acc in enumerate(accs):
            write(tmp_path, tag, id, lr, acc)
    record.add("cmp", list(GROUPS))
    return tmp_path


def cli(root, *args):
    env = {**os.environ, "RUNTAG_ROOT": str(root)}
    return subprocess.run([sys.executable, str(CLI), "table", "cmp", *args], capture_output=True, text=True, env=env)


def test_group_gives_n_and_the_interval_of_each_mean(lab):
    df = table.build("cmp", fmt="md", group=True).set_index("run")
    for tag, (lr, accs) in GROUPS.items():
        row = df.loc[f"{tag} lr={lr}"]
        assert row["test/acc:n"] == len(accs) and row["test/acc"] == pytest.approx(mean(accs))
        if len(accs) == 1:
            assert math.isnan(row["test/acc:ci_low"]) and math.isnan(row["test/acc:ci_high"])
            continue
        half = quantile(0.975, len(accs) - 1) * sd(accs) / math.sqrt(len(accs))
        assert row["test/acc:ci_low"] == pytest.approx(mean(accs) - half, abs=1e-6)
        assert row["test/acc:ci_high"] == pytest.approx(mean(accs) + half, abs=1e-6)
    half_a = 2.776445 * sd(GROUPS["a"][1]) / math.sqrt(5)  # the tabulated t_{0.975,4}
    assert df.loc["a lr=0.1", "test/acc:ci_low"] == pytest.approx(mean(GROUPS["a"][1]) - half_a, abs=1e-6)

    saved = list(csv.reader((lab / "__statistic__/table/cmp.group.csv").open()))
    assert saved[0][:7] == ["run", "runs", "status", "lr", "test/acc", "test/acc:std", "test/loss"]  # as before,
    assert saved[0][8:] == ["test/acc:n", "test/acc:ci_low", "test/acc:ci_high",  # then the new columns
                            "test/loss:n", "test/loss:ci_low", "test/loss:ci_high"]
    md = [line.split(" | ") for line in (lab / "__statistic__/table/cmp.group.md").read_text().splitlines()]
    assert md[0][4:7] == ["test/acc", "test/acc:n", "test/acc:ci95"]
    low, high = mean(GROUPS["a"][1]) - half_a, mean(GROUPS["a"][1]) + half_a
    assert md[2][5:7] == ["5", f"[{low:.4g}, {high:.4g}]"]
    assert md[5][5:7] == ["1", "n=1"]  # c: one run


def test_vs_gives_the_welch_difference_p_value_and_mark(lab):
    df = load_table("cmp", group=True, vs="a").set_index("run")  # a tag that is one group names it
    base = GROUPS["a"][1]
    assert df.loc["a lr=0.1", ["test/acc:diff", "test/acc:p"]].isna().all()
    for tag, significant in (("b", True), ("d", False)):
        row, (diff, half, p) = df.loc[f"{tag} lr={GROUPS[tag][0]}"], welch(GROUPS[tag][1], base)
        assert row["test/acc:diff"] == pytest.approx(diff, abs=1e-12)
        assert row["test/acc:diff_low"] == pytest.approx(diff - half, abs=1e-6)
        assert row["test/acc:diff_high"] == pytest.approx(diff + half, abs=1e-6)
        assert row["test/acc:p"] == pytest.approx(p, abs=1e-6)
        assert row["test/acc:sig"] is significant and (p < 0.05) is significant
        assert row["test/loss:p"] == pytest.approx(p, abs=1e-6)  # 1 - acc: the same test
    c = df.loc["c lr=0.4"]
    assert c["test/acc:diff"] == pytest.approx(0.99 - mean(base)) and math.isnan(c["test/acc:p"])

    out = cli(lab, "--group", "--vs", "a lr=0.1", "--format", "md")  # the whole name works too
    assert out.returncode == 0, out.stderr
    md = {line.split(" | ")[0][2:]: line.split(" | ") for line in
          (lab / "__statistic__/table/cmp.group.md").read_text().splitlines()}
    header = md["run"]
    at, p_at = header.index("test/acc:diff"), header.index("test/acc:p")
    diff, half, p = welch(GROUPS["b"][1], base)
    assert md["b lr=0.2"][at] == f"+{diff:.4g} [{diff - half:.4g}, {diff + half:.4g}] *"
    assert md["b lr=0.2"][p_at] == f"{p:.4g}"
    diff, half, p = welch(GROUPS["d"][1], base)
    assert diff > 0 and md["d lr=0.3"][at] == f"+{diff:.4g} [{diff - half:.4g}, {diff + half:.4g}]"  # includes 0: no mark
    assert md["a lr=0.1"][at] == "baseline" and md["c lr=0.4"][at] == f"+{0.99 - mean(base):.4g} (n=1)"
    assert "test/acc:diff" in out.stdout.splitlines()[0]

    tex = cli(lab, "--group", "tag", "--vs", "b", "--format", "latex")
    assert tex.returncode == 0, tex.stderr
    assert "baseline" in (lab / "__statistic__/table/cmp.group.tex").read_text()


def test_an_unknown_or_ambiguous_group_and_vs_without_group_are_refused(lab):
    table.build("cmp", group=True)
    before = sorted((p.name, p.read_bytes()) for p in (lab / "__statistic__").rglob("*") if p.is_file())
    for args, words in ((["--group", "--vs", "nope"], ("no group 'nope'", "'a lr=0.1'")),
                        (["--vs", "a"], ("--vs a", "--group"))):
        assert_one_line_mistake(cli(lab, *args), *words)
    assert sorted((p.name, p.read_bytes()) for p in (lab / "__statistic__").rglob("*") if p.is_file()) == before
    write(lab, "a", 5, 0.5, 0.8)  # tag a now has two groups
    record.add("cmp", ["a/5"])
    before = sorted((p.name, p.read_bytes()) for p in (lab / "__statistic__").rglob("*") if p.is_file())
    assert_one_line_mistake(cli(lab, "--group", "--vs", "a"), "tag 'a' has 2 groups")
    assert sorted((p.name, p.read_bytes()) for p in (lab / "__statistic__").rglob("*") if p.is_file()) == before
    with pytest.raises(UserError, match="compares groups"):
        load_table("cmp", vs="a lr=0.1")
