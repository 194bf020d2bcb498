"""record, title, table and the notebook API, on real runs in a temporary git repository."""
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/: the tooling, for the in-process API

from utils.errors import UserError  # noqa: E402
from utils.statistic import load_scalars, load_table, record, table, title  # noqa: E402

METRICS = ["last/train_loss", "last/train_acc", "last/val_loss", "last/val_acc", "best/train_loss",
           "best/train_acc", "best/val_loss", "best/val_acc", "best/epoch", "best/step", "test/loss", "test/acc"]


@pytest.fixture(scope="module")
def lab(shared_project):
    """lra/0 and lra/1 (lr=0.01, fresh seeds), lrb/0 (lr=0.05), base/0; then a commit that adds
    a config key `depth`, and wide/0 at it. Real 2-epoch runs, made once for the module."""
    p = shared_project
    for tag, *overrides in [("lra", "lr=0.01"), ("lra", "lr=0.01"), ("lrb", "lr=0.05"), ("base",)]:
        p.cli("run", tag, "epochs=2", *overrides, check=True)
    config = (p.root / "code/config.py").read_text() + "depth = 2                  # a key added later\n"
    p.commit("code/config.py", config, "add depth")
    p.cli("run", "wide", "epochs=2", check=True)
    return p


@pytest.fixture
def here(lab, monkeypatch):
    """The in-process API pointed at the lab's results."""
    monkeypatch.setenv("RUNTAG_ROOT", str(lab.root))
    return lab


def list_lines(p, name):
    return (p.root / "__statistic__/exper-list" / f"{name}.txt").read_text().splitlines()


def csv(p, name):
    return pd.read_csv(p.root / "__statistic__/table" / f"{name}.csv")


def title_file(p, name):
    return p.root / "__statistic__/title" / f"{name}.json"


def test_record_tags_ids_and_globs(here):
    out = here.cli("record", "-l", "globs", "lra/1", check=True)
    assert list_lines(here, "globs") == ["lra/1"]
    out = here.cli("record", "-l", "globs", "lr*", check=True)  # quoted glob, as the shell passes it
    assert list_lines(here, "globs") == ["lra/1", "lra/0", "lrb/0"]  # appended, no duplicate
    assert "recorded 2 runs" in out.stdout
    assert record.add("globs", ["base"]) == ["base/0"]  # a bare tag: all its ids
    assert record.add("globs", ["base", "lra/0"]) == []
    assert list_lines(here, "globs") == ["lra/1", "lra/0", "lrb/0", "base/0"]
    assert record.add("ids", ["lr*/1"]) == ["lra/1"]  # a glob with an id: the tags that have it


@pytest.mark.parametrize("args, message", [
    (["lra/0", "nope"], "unknown tag 'nope'"),
    (["lra/9"], "unknown run 'lra/9'"),
    (["zz*"], "no run matches 'zz*'"),
    (["-l", "a.b", "lra/0"], "invalid list name"),
])
def test_record_unknown_runs_are_a_user_error_and_write_nothing(lab, args, message):
    out = lab.cli("record", *(args if args[0] == "-l" else ["-l", "bad", *args]))
    assert out.returncode == 2
    assert out.stderr.startswith("runtag: ") and message in out.stderr and len(out.stderr.splitlines()) == 1
    assert not (lab.root / "__statistic__/exper-list/bad.txt").exists()
    assert not (lab.root / "__statistic__/exper-list/a.b.txt").exists()


def test_title_comments_equal_hparams_and_keeps_edits_across_reruns(here):
    record.add("edits", ["lra"])  # lra/0, lra/1: the same hyperparameters
    here.cli("title", "edits", check=True)
    text = title_file(here, "edits").read_text()
    assert '    // "lr",  // same in every run: 0.01' in text.splitlines()
    assert '    // "last/system_ram_mb",  // the machine\'s, not the model\'s' in text.splitlines()
    hparams, metrics = title.columns("edits")
    assert hparams == [] and metrics == METRICS  # every hyperparameter is equal: none shown

    # the researcher's edits: a metric hidden with #, an equal key shown, a note of their own
    text = text.replace('    "last/train_loss",', '    # "last/train_loss",')
    text = text.replace('    // "epochs",  // same in every run: 2', '    "epochs",  // same in every run: 2\n    // my note')
    title_file(here, "edits").write_text(text)
    record.add("edits", ["lrb/0", "wide"])  # lr now differs; wide brings the new key depth
    here.cli("title", "edits", check=True)
    lines = title_file(here, "edits").read_text().splitlines()
    assert '    # "last/train_loss",' in lines  # the edited lines stay as edited
    assert '    "epochs",  // same in every run: 2' in lines and "    // my note" in lines
    assert '    "lr",' in lines  # its own "same" line, rewritten: lr differs now
    assert '    "depth",' in lines  # a new key, shown: only wide/0 has it
    assert '    // "optimizer",  // same in every run: "adam"' in lines
    hparams, metrics = title.columns("edits")
    assert hparams == ["lr", "epochs", "depth"]
    assert metrics == [m for m in METRICS if m != "last/train_loss"]


def test_table_columns_follow_the_title(here):
    record.add("cols", ["lra", "lrb"])
    here.cli("table", "cols", check=True)
    assert list(csv(here, "cols").columns) == ["run", "status", "lr", *METRICS]

    text = title_file(here, "cols").read_text()
    for metric in METRICS:  # hide every metric but two, and put test/acc first
        text = text.replace(f'    "{metric}",', f'    // "{metric}",')
    text = text.replace('  "metrics": [', '  "metrics": [\n    "test/acc",\n    "best/val_acc",')
    text = text.replace('    // "epochs",  // same in every run: 2', '    "epochs",')
    title_file(here, "cols").write_text(text)
    out = here.cli("table", "cols", check=True)
    df = csv(here, "cols")
    assert list(df.columns) == ["run", "status", "lr", "epochs", "test/acc", "best/val_acc"]
    assert list(df["run"]) == ["lra/0", "lra/1", "lrb/0"] and set(df["status"]) == {"finished"}
    for row in df.itertuples(index=False):
        rec = here.record(*row.run.split("/"))
        assert (row.lr, row.epochs, row[4], row[5]) == (
            rec["hparams"]["lr"], 2, rec["metrics"]["test/acc"], rec["metrics"]["best/val_acc"])
    shown = out.stdout.splitlines()  # aligned: every row has the header's fields, columns line up
    assert shown[0].split() == list(df.columns) and len(shown) == 4
    assert all(len(line.split()) == 6 for line in shown)
    assert {len(line) for line in shown} == {len(shown[0])}  # numbers right-aligned to the header


def test_table_builds_the_title_when_missing(here):
    record.add("fresh", ["lra/0", "lrb/0"])
    assert not title_file(here, "fresh").exists()
    here.cli("table", "fresh", check=True)
    assert title_file(here, "fresh").exists()
    assert list(csv(here, "fresh").columns) == ["run", "status", "lr", *METRICS]


def test_a_damaged_record_is_named_and_skipped(here):
    broken = here.root / "__result__/broken/0"
    shutil.copytree(here.run_dir("lra", 0), broken)
    try:
        (broken / "statistic.json").write_text('{"version": 1, "tag": "bro')  # cut mid-write
        listed = record.list_path("damaged")  # written by hand: `record` refuses a damaged run (issue 23)
        listed.parent.mkdir(parents=True, exist_ok=True)
        listed.write_text("lra/0\nbroken/0\nlrb/0\n")
        out = here.cli("table", "damaged", check=True)
        assert "broken/0" in out.stderr and "missing or damaged" in out.stderr
        assert list(csv(here, "damaged")["run"]) == ["lra/0", "lrb/0"]
    finally:
        shutil.rmtree(broken.parent)


def test_sort_ascending_descending_and_unknown_key(here):
    record.add("sorted", ["lrb", "lra"])
    here.cli("table", "sorted", "--sort", "lr", check=True)
    assert list(csv(here, "sorted")["lr"]) == [0.01, 0.01, 0.05]
    here.cli("table", "sorted", "--sort=-lr", check=True)
    assert list(csv(here, "sorted")["run"]) == ["lrb/0", "lra/0", "lra/1"]  # stable within equal lr
    out = here.cli("table", "sorted", "--sort", "nope")
    assert out.returncode == 2 and "cannot sort by 'nope'" in out.stderr
    assert list(csv(here, "sorted")["run"]) == ["lrb/0", "lra/0", "lra/1"]  # untouched


def parse_markdown(text):
    lines = text.strip().splitlines()
    assert set(lines[1].replace("|", "").split()) <= {"---", "---:"}
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    return cells[0], cells[2:]


def parse_latex(text):
    body = text.split("\\midrule")[1].split("\\bottomrule")[0]
    header = text.split("\\toprule")[1].split("\\midrule")[0]
    split = lambda line: [c.strip().replace("\\_", "_") for c in line.strip().removesuffix("\\\\").split(" & ")]
    return split(header), [split(line) for line in body.strip().splitlines()]


def close(shown, value):
    """A shown number (4 significant digits) is the number."""
    return float(shown) == pytest.approx(value, rel=5e-4)


@pytest.mark.parametrize("fmt, suffix, parse", [("md", ".md", parse_markdown), ("latex", ".tex", parse_latex)])
def test_markdown_and_latex_parse_back_to_the_same_numbers(here, fmt, suffix, parse):
    record.add("paste", ["lra", "lrb"])
    df = table.build("paste", fmt=fmt)
    headers, rows = parse((here.root / "__statistic__/table" / f"paste{suffix}").read_text())
    assert headers == list(df.columns) == list(csv(here, "paste").columns)
    assert [r[0] for r in rows] == list(df["run"])
    for row, (_, expected) in zip(rows, df.iterrows()):
        for shown, key in zip(row[2:], headers[2:]):
            assert close(shown, expected[key]), (key, shown, expected[key])


def synthetic(root, tag, id, metrics, status="finished", lr=0.1, overrides=None):
    """A statistic.json of DESIGN.md's schema with known metrics (for checking arithmetic);
    its overrides are {"lr": lr} unless given."""
    folder = root / "__result__" / tag / str(id)
    folder.mkdir(parents=True)
    overrides = {"lr": lr} if overrides is None else overrides
    rec = {"version": 1, "tag": tag, "id": id, "status": status, "commit": "0" * 40, "command": f"run {tag}",
           "seed": id, "fixed_seed": False, "overrides": overrides, "hparams": {"lr": lr, "epochs": 3},
           "metrics": metrics, "epoch": 3, "epochs": 3, "start": None, "end": None, "duration_s": 1.0,
           "host": "elsewhere", "gpus": None, "pid": 1, "world_size": 1, "parent": None, "versions": {}}
    (folder / "statistic.json").write_text(json.dumps(rec))


def test_group_by_tag_is_mean_and_sample_std_per_tag(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RUNTAG_ROOT", str(tmp_path))
    acc, loss = [0.91, 0.935, 0.902, 0.95], [0.31, 0.25, 0.28, 0.2]
    for id, (a, l) in enumerate(zip(acc, loss)):
        synthetic(tmp_path, "g", id, {"test/acc": a, "test/loss": l}, status="failed" if id == 3 else "finished")
    synthetic(tmp_path, "h", 0, {"test/acc": 0.5, "test/loss": 1.5}, lr=0.2)
    synthetic(tmp_path, "h", 1, {"test/acc": 0.7}, lr=0.3)  # test/loss missing: left out of its mean
    record.add("grouped", ["g", "h"])

    df = table.build("grouped", fmt="md", group="tag")  # h's two configurations in one row
    g, h = df.set_index("run").loc["g"], df.set_index("run").loc["h"]
    assert (g["runs"], g["status"], h["runs"], h["status"]) == (4, "finished 3, failed 1", 2, "finished")
    assert g["test/acc"] == pytest.approx(np.mean(acc)) and g["test/acc:std"] == pytest.approx(np.std(acc, ddof=1))
    assert g["test/loss"] == pytest.approx(np.mean(loss)) and g["test/loss:std"] == pytest.approx(np.std(loss, ddof=1))
    assert h["test/acc:std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert h["test/loss"] == 1.5 and np.isnan(h["test/loss:std"])
    assert (g["lr"], h["lr"]) == ("0.1", "0.2 | 0.3")  # one value, or the distinct ones
    saved = pd.read_csv(tmp_path / "__statistic__/table/grouped.group.csv")
    pd.testing.assert_frame_equal(saved, df, check_dtype=False)
    assert not (tmp_path / "__statistic__/table/grouped.csv").exists()  # the ungrouped table is its own file

    headers, rows = parse_markdown((tmp_path / "__statistic__/table/grouped.group.md").read_text())
    assert headers == ["run", "runs", "status", "lr", "test/acc", "test/acc:n", "test/acc:ci95",
                       "test/loss", "test/loss:n", "test/loss:ci95"]  # n and interval: test_confidence.py
    mean, std = rows[0][4].split(" ± ")
    assert close(mean, np.mean(acc)) and close(std, np.std(acc, ddof=1))
    assert rows[1][7:9] == ["1.5", "1"]  # one value: no ± 
    assert f"{np.mean(acc):.4g} ± {np.std(acc, ddof=1):.4g}" in capsys.readouterr().out


@pytest.mark.slow
def test_group_folds_runs_of_one_configuration_not_of_one_tag(lab):
    """Issue 11: a mean over different overrides is not a result. `--group` is one row per tag
    and configuration; a fresh seed, a fixed one (-f) or overrides typed in another order do not
    split it. `--group tag` is one row per tag, whatever the overrides."""
    for flags, overrides in [([], ["lr=0.01", "epochs=2"]), (["-f"], ["epochs=2", "lr=0.01"]),
                             ([], ["lr=0.05", "epochs=2"])]:
        lab.cli("run", *flags, "mix", *overrides, check=True)
    recs = [lab.record("mix", id) for id in range(3)]
    assert recs[0]["seed"] != recs[1]["seed"] and recs[1]["fixed_seed"]  # seeds vary inside the group
    acc = [rec["metrics"]["test/acc"] for rec in recs]
    lab.cli("record", "-l", "mixed", "mix", check=True)

    out = lab.cli("table", "mixed", "--group", check=True)
    df = csv(lab, "mixed.group")
    assert list(df["run"]) == ["mix epochs=2 lr=0.01", "mix epochs=2 lr=0.05"] and list(df["runs"]) == [2, 1]
    assert list(df["lr"]) == [0.01, 0.05]  # one value per row, not `0.01 | 0.05`
    assert df["test/acc"][0] == pytest.approx(np.mean(acc[:2]))
    assert df["test/acc:std"][0] == pytest.approx(np.std(acc[:2], ddof=1))
    assert df["test/acc"][1] == pytest.approx(acc[2]) and np.isnan(df["test/acc:std"][1])
    assert re.search(r"^mix epochs=2 lr=0\.05\s+1\s", out.stdout, re.M)

    lab.cli("table", "mixed", "--group", "tag", check=True)
    df = csv(lab, "mixed.group")
    assert list(df["run"]) == ["mix"] and list(df["runs"]) == [3] and list(df["lr"]) == ["0.01 | 0.05"]
    assert df["test/acc"][0] == pytest.approx(np.mean(acc))
    out = lab.cli("table", "mixed", "--group", "nope")
    assert out.returncode == 2 and "invalid choice: 'nope'" in out.stderr


def test_group_in_python_false_true_config_and_tag(tmp_path, monkeypatch):
    """build/load_table take group=False/True/"config"/"tag"; True is "config". A `seed`
    override (a config.py may have one) is a seed: it does not split a group."""
    monkeypatch.setenv("RUNTAG_ROOT", str(tmp_path))
    synthetic(tmp_path, "g", 0, {"test/acc": 0.8}, overrides={"lr": 0.1, "seed": 1})
    synthetic(tmp_path, "g", 1, {"test/acc": 0.9}, overrides={"seed": 2, "lr": 0.1})
    synthetic(tmp_path, "h", 0, {"test/acc": 0.5}, lr=0.2)
    synthetic(tmp_path, "h", 1, {"test/acc": 0.7}, lr=0.3)
    synthetic(tmp_path, "h", 2, {"test/acc": 0.6}, overrides={})  # config.py's values: the tag alone
    record.add("api", ["g", "h"])

    by_config = table.build("api", group=True)
    assert list(by_config["run"]) == ["g lr=0.1", "h lr=0.2", "h lr=0.3", "h"]
    assert list(by_config["runs"]) == [2, 1, 1, 1] and list(by_config["lr"]) == ["0.1", "0.2", "0.3", "0.1"]
    assert by_config["test/acc"][0] == pytest.approx(0.85)
    pd.testing.assert_frame_equal(table.build("api", group="config"), by_config)
    pd.testing.assert_frame_equal(load_table("api", group=True), by_config)
    assert list(table.build("api", group="tag")["run"]) == ["g", "h"]
    assert list(table.build("api", group=False)["run"]) == ["g/0", "g/1", "h/0", "h/1", "h/2"]
    with pytest.raises(UserError, match="unknown grouping 'nope'"):
        table.build("api", group="nope")


def test_a_misspelled_title_key_is_warned_with_the_closest_key(here):
    """Issue 11: a key of the title that no run has is an empty column; `table` says so, one
    line a key, with the closest key of its section, and still builds the table."""
    record.add("typo", ["lra", "lrb"])
    out = here.cli("table", "typo", check=True)
    assert "warning" not in out.stderr  # the title `table` writes names what the runs have
    text = title_file(here, "typo").read_text()
    text = text.replace('    "best/val_acc",', '    "best/val_ac",')
    text = text.replace('    "lr",', '    "lrr",\n    "test/acc",  // a metric, in the wrong section\n    "zzz",')
    title_file(here, "typo").write_text(text)

    out = here.cli("table", "typo", check=True)
    start = "runtag: warning: title typo.json: no column"
    assert [line for line in out.stderr.splitlines() if "warning" in line] == [
        f"{start} 'lrr' in any run — did you mean 'lr'?",
        f"{start} 'test/acc' in any run — it is one of the metrics: move it from 'hparams' to 'metrics'",
        f"{start} 'zzz' in any run",  # nothing close: no guess
        f"{start} 'best/val_ac' in any run — did you mean 'best/val_acc'?",
    ]
    df = csv(here, "typo")
    assert list(df["run"]) == ["lra/0", "lra/1", "lrb/0"]
    assert "best/val_ac" in df.columns and df["best/val_ac"].isna().all()


def test_load_table_is_the_table(here):
    record.add("api", ["lr*"])
    built = table.build("api")
    loaded = load_table("api")
    pd.testing.assert_frame_equal(loaded, built)
    pd.testing.assert_frame_equal(csv(here, "api"), loaded, check_dtype=False)
    assert len(load_table("api", group=True)) == 2  # lra, lrb


def test_load_scalars_reads_tensorboard_events(here):
    df = load_scalars(["lra/0", "lrb"])
    assert list(df.columns) == ["run", "tag", "step", "value"]
    assert set(df["run"]) == {"lra/0", "lrb/0"}
    for name in ("lra/0", "lrb/0"):
        val = df[(df["run"] == name) & (df["tag"] == "val/acc")].sort_values("step")
        assert list(val["step"]) == [20, 40]  # optimizer steps: 20 an epoch
        assert val["value"].iloc[-1] == pytest.approx(here.record(*name.split("/"))["metrics"]["last/val_acc"], rel=1e-6)
    assert set(load_scalars(["lra/0"], tags=["lr"])["tag"]) == {"lr"}


def test_load_scalars_reads_every_event_file_of_a_continued_run(lab, tmp_path, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter
    shutil.copytree(lab.run_dir("lra", 0), tmp_path / "__result__/cont/0")
    writer = SummaryWriter(tmp_path / "__result__/cont/0/tensorboard")  # what `con` adds: a second file
    writer.add_scalar("val/acc", 0.5, 60)
    writer.add_scalar("val/acc", 0.6, 80)
    writer.close()
    assert len(list((tmp_path / "__result__/cont/0/tensorboard").glob("events.out.tfevents.*"))) == 2
    monkeypatch.setenv("RUNTAG_ROOT", str(tmp_path))
    df = load_scalars(["cont/0"], tags=["val/acc"])
    assert list(df.sort_values("step")["step"]) == [20, 40, 60, 80]
    assert list(df.sort_values("step")["value"])[2:] == pytest.approx([0.5, 0.6])


def test_shell_functions(lab):
    out = lab.sh("record -l shell 'lr*' && title shell && table shell --format md")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^lrb/0\s+finished\s+0\.05\s", out.stdout, re.M)
    assert (lab.root / "__statistic__/table/shell.md").exists()


def test_status_of_a_run_whose_process_is_gone_is_dead(tmp_path, monkeypatch):
    import socket
    import subprocess
    monkeypatch.setenv("RUNTAG_ROOT", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    synthetic(tmp_path, "crashed", 0, {"test/acc": 0.5}, status="running")
    path = tmp_path / "__result__/crashed/0/statistic.json"
    rec = json.loads(path.read_text())
    path.write_text(json.dumps({**rec, "host": socket.gethostname(), "pid": int(gone.stdout)}))
    synthetic(tmp_path, "elsewhere", 0, {"test/acc": 0.6}, status="running")  # another host: cannot tell
    record.add("status", ["crashed", "elsewhere"])
    assert list(table.build("status")["status"]) == ["dead", "running"]
