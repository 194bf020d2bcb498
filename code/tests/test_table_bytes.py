"""`table`'s output, byte for byte: the CSV, Markdown and LaTeX files and the aligned printout
(stdout not a terminal) of a few hundred varied records, against what the implementation before
the streaming one (pandas' DataFrame.to_csv, issue 26) wrote for the same records.

The records are made from a seed (`make`): floats of every magnitude, ints past 2**53, bools,
strings with commas, quotes, newlines, `|`, LaTeX's specials and non-ASCII text, lists and dicts,
keys missing in some runs (a column of ints and blanks is a column of floats to pandas),
diverged metrics ("nan"), every status, a dead run and runs in Slurm jobs, damaged records (not JSON, not UTF-8,
a wrong type, another run's record), missing folders and files. `data/table_bytes.json` holds,
per case, the sha256 of each file written and of stdout and stderr, and a few literal lines.
Regenerate it only for an intended change of output: `python code/tests/test_table_bytes.py`.
"""
import hashlib
import json
import os
import random
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/

from utils.statistic import table  # noqa: E402

EXPECTED = Path(__file__).with_name("data") / "table_bytes.json"
TEXTS = ["plain", "a,b", 'say "hi"', "two\nlines", "pipe | bar", "100% & $x_1$ #{~^}\\", "héllo wörld ✓",
         "", " padded ", "tab\there", "0.1", "None"]
STATUSES = ["finished", "finished", "finished", "failed", "interrupted", "killed", "running", "pending"]

CASES = {  # name: the arguments of `table`
    "plain": ["all"], "md": ["all", "--format", "md"], "latex": ["all", "--format", "latex"],
    "sort": ["all", "--sort", "lr"], "sort-desc": ["all", "--sort=-last/val_acc", "--format", "md"],
    "sort-mixed": ["all", "--sort", "mixed"], "sort-missing": ["all", "--sort=-best/epoch"],
    "sort-status": ["all", "--sort", "status"],
    "group": ["all", "--group"], "group-tag": ["all", "--group", "tag", "--format", "md"],
    "group-latex": ["all", "--group", "--format", "latex"],
    "titled": ["titled"], "titled-md": ["titled", "--format", "md"], "titled-group": ["titled", "--group", "tag"],
    "small": ["small"], "small-latex": ["small", "--format", "latex", "--sort=-lr"],
}


def number(rng):
    return rng.choice([0.1, 1e-5, 3e-4, 1e16, 1.5e16, 123456789.0, 12345.678, -0.0, 0.0, 1 / 3, 2.5e-300,
                       1e300, -7.25, 99999.5, 1e4, 0.00012345, float("inf"), rng.uniform(-1, 1)])


def hparams(rng, i):
    hp = {"lr": number(rng), "model": rng.choice(["cnn", "mlp", "res,net"]), "epochs": rng.choice([2, 20]),
          "big": rng.choice([2**53 + 1, 2**62 + 3, -5, 7]), "flag": rng.choice([True, False]),
          "text": rng.choice(TEXTS), "mixed": rng.choice([1, 2.5, "x", None, True]),
          "list": rng.choice([[1, 2], {"a": 1}, [], "[1, 2]"]), "same": "everywhere", "ratio": rng.random()}
    for key in ("epochs", "flag", "big", "ratio"):
        if rng.random() < 0.15:  # missing in some runs: an int or bool column with blanks
            del hp[key]
    if i % 7 == 0:
        hp["rare"] = rng.choice(TEXTS)
    if i % 11 == 0:
        hp["huge"] = 2**64 + i  # past uint64: text to pandas
    return hp


def metrics(rng, status):
    if status in ("running", "pending") and rng.random() < 0.5:
        return {}
    acc = rng.uniform(0.5, 1)
    m = {"last/val_acc": acc, "last/train_loss": rng.choice([rng.random(), "nan", "inf", 3]),
         "best/epoch": rng.randint(1, 40), "test/acc": acc - 0.01, "last/system_ram_mb": rng.randint(100, 9000),
         "best/val_loss": rng.choice([rng.random(), 1e-7, 12345678.9, 0])}
    if rng.random() < 0.2:
        del m["best/epoch"]
    return m


def record(rng, tag, id, host):
    status = rng.choice(STATUSES)
    hp = hparams(rng, id)
    overrides = rng.choice([{}, {"lr": hp["lr"]}, {"epochs": 2, "lr": 0.1}, {"lr": 0.1, "epochs": 2},
                            {"seed": id, "model": hp["model"]}])
    return {"version": 1, "tag": tag, "id": id, "status": status, "commit": f"{id:040x}", "command": f"run {tag}",
            "seed": rng.randrange(2**31), "fixed_seed": False, "overrides": overrides, "hparams": hp,
            "metrics": metrics(rng, status), "epoch": 1, "epochs": 2, "host": host, "pid": 1 + id,
            "duration_s": rng.uniform(1, 100), "world_size": 1, "evals": [{"epoch": e} for e in range(3)]}


DAMAGE = {  # how a few records are broken: what each writes into statistic.json
    "cut": lambda rec: json.dumps(rec)[:40].encode(),
    "latin1": lambda rec: json.dumps(rec, ensure_ascii=False).replace("plain", "pl\xe4in").encode("latin-1", "replace")
    + b'\n{"x": "\xe9"}',
    "typed": lambda rec: json.dumps({**rec, "metrics": []}).encode(),
    "other": lambda rec: json.dumps({**rec, "id": rec["id"] + 1000}).encode(),
    "list": lambda rec: b"[1, 2]",
    "nan": lambda rec: json.dumps({**rec, "metrics": {**rec["metrics"], "test/acc": float("nan")}}).encode(),
}


SQUEUE = """#!/bin/sh
# squeue -h -r --states=all -o %i|%T -j JOBS: a state for three jobs in four, by the job's number
for a in "$@"; do jobs="$a"; done
echo "$jobs" | tr , '\\n' | while read j; do
  case $((j % 4)) in 0) echo "$j|PENDING";; 1) echo "$j|RUNNING";; 2) echo "$j|CANCELLED";; esac
done
"""


def make(root, seed=26, n=300):
    """n records under root/__result__ (tags t00..t29, with their damage), the lists `all`,
    `titled` (with a hand-written title) and `small`; root/bin: a squeue and a sacct that
    answer the same everywhere (put it first in PATH)."""
    (root / "bin").mkdir()
    for name, script in (("squeue", SQUEUE), ("sacct", "#!/bin/sh\n")):
        (root / "bin" / name).write_text(script)
        (root / "bin" / name).chmod(0o755)
    rng = random.Random(seed)
    names, here = [], socket.gethostname()
    for i in range(n):
        tag, id = f"t{i % 30:02d}", i // 30
        folder = root / "__result__" / tag / str(id)
        names.append(f"{tag}/{id}")
        if i % 53 == 17:  # listed, never made
            continue
        folder.mkdir(parents=True)
        rec = record(rng, tag, id, here if i % 41 == 5 else "elsewhere")  # running here, unlocked: dead
        if i % 41 == 5 or i % 61 == 3:
            rec["status"] = "running"
        if i % 13 == 2:  # a run in a Slurm job: its status is the job's to correct (runs.status)
            rec["slurm_job_id"] = str(7000 + i)
        damage = list(DAMAGE)[i % 47] if i % 47 < len(DAMAGE) and i > 30 else None
        if i % 89 == 44:  # a folder without its file
            continue
        (folder / "statistic.json").write_bytes(DAMAGE[damage](rec) if damage else json.dumps(rec, indent=1).encode())
    lists = root / "__statistic__" / "exper-list"
    lists.mkdir(parents=True)
    (lists / "all.txt").write_text("# every run\n" + "\n".join(names) + "\n\n")
    (lists / "titled.txt").write_text("\n".join(names[::3]) + "\n")
    (lists / "small.txt").write_text("\n".join(names[30:36]) + "\n")
    titles = root / "__statistic__" / "title"
    titles.mkdir(parents=True)
    (titles / "titled.json").write_text(
        '{"hparams": ["lr", "status", "lr", "text", "nope", "best/epoch", "mixed",  // a key twice, one of the metrics\n'
        '  # "model",\n  "big", "flag", "list", "huge",],\n'
        ' "metrics": ["test/acc", "lr", "best/epoch", "last/train_loss", "best/val_los", "run"]}\n')
    return names


def run(root, args, capsys):
    """`table ARGS` in this process; {file or stream: its bytes}."""
    import argparse
    parser = argparse.ArgumentParser()
    table.add_table(parser)
    out = root / "__statistic__" / "table"
    for old in out.glob("*"):  # what is there after: what this command wrote
        old.unlink()
    capsys.readouterr()
    table.table(parser.parse_args(args))
    printed = capsys.readouterr()
    got = {p.name: p.read_bytes() for p in out.glob("*")}
    got["stdout"], got["stderr"] = printed.out.encode(), printed.err.replace(str(root), "<root>").encode()
    return got


def digest(got):
    return {name: hashlib.sha256(data).hexdigest() for name, data in sorted(got.items())}


def lines(got):
    """A few literal lines of each file: what a failure shows."""
    return {name: data.decode(errors="replace").splitlines()[:3] + data.decode(errors="replace").splitlines()[-2:]
            for name, data in sorted(got.items()) if name != "stderr"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("bytes")
    make(root)
    return root


@pytest.mark.parametrize("case", list(CASES))
def test_table_writes_the_same_bytes_as_before(results, case, capsys, monkeypatch):
    monkeypatch.setenv("RUNTAG_ROOT", str(results))
    monkeypatch.setenv("PATH", f"{results / 'bin'}{os.pathsep}{os.environ['PATH']}")
    title = results / "__statistic__" / "title" / "all.json"
    if case == "plain":
        title.unlink(missing_ok=True)  # the first case builds the title too, as a first `table` does
    got = run(results, CASES[case], capsys)
    if case == "plain":
        got["title"] = title.read_bytes()
    expected = json.loads(EXPECTED.read_text())[case]
    assert lines(got) == expected["lines"]
    assert digest(got) == expected["sha256"]


def cli(root, *args, stdout=None, env=None):
    """`cli.py table ARGS` as a process, for this root's records; its stdout's bytes (a pty's:
    the terminal's line endings made \\n again) and its stderr."""
    import pty
    import subprocess
    env = {**os.environ, "RUNTAG_ROOT": str(root), "PATH": f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    argv = [sys.executable, str(Path(__file__).resolve().parents[1] / "utils" / "cli.py"), "table", *args]
    if stdout != "terminal":
        done = subprocess.run(argv, capture_output=True, env=env, check=True)
        return done.stdout, done.stderr
    master, slave = pty.openpty()
    child = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = b""
    try:
        while chunk := os.read(master, 1 << 16):
            out += chunk
    except OSError:  # the child's side closed: all of it read
        pass
    os.close(master)
    err = child.stderr.read()
    assert child.wait() == 0, err
    return out.replace(b"\r\n", b"\n"), err


def test_a_terminal_shows_the_rows_that_fit_then_where_the_rest_is(results):
    """Issue 26: in a terminal, the rows that fit (LINES tall) and a line naming the CSV and
    --all; --all prints every row, as a pipe gets them; the CSV is the same either way."""
    expected = json.loads(EXPECTED.read_text())["plain"]["sha256"]
    csv = results / "__statistic__" / "table" / "all.csv"
    out, _ = cli(results, "all", stdout="terminal", env={"LINES": "12"})
    lines = out.decode().splitlines()
    assert lines[0].split()[:3] == ["run", "status", "lr"] and lines[1].startswith("t00/0 ")
    rows = sum(1 for _ in __import__("csv").reader(csv.open(newline=""))) - 1
    assert lines[-1] == f"... {rows - 9} more rows: __statistic__/table/all.csv (all of them here: table all --all)"
    assert hashlib.sha256(csv.read_bytes()).hexdigest() == expected["all.csv"]
    every, _ = cli(results, "all", "--all", stdout="terminal", env={"LINES": "12"})
    assert hashlib.sha256(every).hexdigest() == expected["stdout"]
    piped, _ = cli(results, "all")
    assert hashlib.sha256(piped).hexdigest() == expected["stdout"]


def test_the_plain_table_imports_no_pandas(results):
    """The plain `table` streams without pandas (its import alone was most of a small table's
    time); --group, --sort and LaTeX import it."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from utils.statistic import table; "
              "table.write(*sys.argv[2:3], **({'sort': sys.argv[3]} if sys.argv[3:] else {})); "
              "print('pandas' in sys.modules, file=sys.stderr)")
    code = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "RUNTAG_ROOT": str(results)}
    import subprocess
    for args, imported in ((["small"], "False"), (["small", "lr"], "True")):
        done = subprocess.run([sys.executable, "-c", script, code, *args], capture_output=True, text=True, env=env)
        assert done.returncode == 0 and done.stderr.splitlines()[-1] == imported, done.stderr


def regenerate():
    """Write data/table_bytes.json from the implementation as it is now."""
    import tempfile

    class Capture:  # capsys outside pytest
        def __init__(self):
            import io
            self.out, self.err = io.StringIO(), io.StringIO()

        def readouterr(self):
            out, err = self.out.getvalue(), self.err.getvalue()
            self.out.seek(0), self.out.truncate(), self.err.seek(0), self.err.truncate()
            return type("Captured", (), {"out": out, "err": err})

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["RUNTAG_ROOT"] = tmp
        make(root)
        os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}"
        capture, expected = Capture(), {}
        sys.stdout, sys.stderr = capture.out, capture.err
        try:
            for case, args in CASES.items():
                got = run(root, args, capture)
                if case == "plain":
                    got["title"] = (root / "__statistic__/title/all.json").read_bytes()
                expected[case] = {"sha256": digest(got), "lines": lines(got)}
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    EXPECTED.parent.mkdir(exist_ok=True)
    EXPECTED.write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    regenerate()
