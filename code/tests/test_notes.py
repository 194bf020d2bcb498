"""Issue 27, `note`: a timestamped line added to a finished run's record (`notes`), printed back one
a line; a live run or a damaged record refused in one line with nothing written; `expels` marks
runs with notes (other lines as before); `table --notes` shows each run's (or group's) newest note.
One real run for the module (the shared project), the odd records written beside it."""
import json
import re
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/

from conftest import assert_one_line_mistake, ok  # noqa: E402
from utils import runlock  # noqa: E402

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


@pytest.fixture(scope="module")
def lab(shared_project):
    """n/0: a real finished run (1 epoch); plain/0 and plain/1: copies of its record under
    another tag, never noted (what expels printed before notes existed)."""
    p = shared_project
    p.cli("run", "n", "epochs=1", check=True)
    for id in (0, 1):
        copy(p, "plain", id)
    return p


def copy(p, tag, id, **fields):
    """A run folder `tag/id` holding n/0's record (without notes) as its own, with `fields` changed (None: removed)."""
    rec = {**json.loads((p.run_dir("n", 0) / "statistic.json").read_text()), "tag": tag, "id": id}
    rec.pop("notes", None)  # n/0's own, once noted
    for key, value in fields.items():
        rec.pop(key, None) if value is None else rec.__setitem__(key, value)
    folder = p.run_dir(tag, id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "statistic.json").write_text(json.dumps(rec, indent=1))
    return folder / "statistic.json"


def test_note_adds_timestamped_lines_and_prints_them(lab):
    path = lab.run_dir("n", 0) / "statistic.json"
    before = path.read_bytes()
    out = ok(lab.cli("note", "n/0"))  # none yet: nothing printed
    assert out.stdout == "" and path.read_bytes() == before
    t0 = datetime.now(timezone.utc).replace(microsecond=0)
    ok(lab.cli("note", "n/0", "lr looks too high"))
    ok(lab.cli("note", "n", "  best at epoch 1, try more  "))  # a bare tag: its newest run; text stripped
    after = json.loads(path.read_text())
    assert [n["text"] for n in after["notes"]] == ["lr looks too high", "best at epoch 1, try more"]
    for n in after["notes"]:
        assert set(n) == {"time", "text"} and TIME.fullmatch(n["time"]), n
        assert t0 <= datetime.fromisoformat(n["time"]) <= datetime.now(timezone.utc)
    rest = {k: v for k, v in after.items() if k != "notes"}
    assert list(rest) == list(json.loads(before))  # every other field as it was, in its order
    from utils import runs
    assert runs.encode(rest) == before  # byte for byte, as the run wrote it
    printed = ok(lab.cli("note", "n/0")).stdout.splitlines()
    assert printed == [f"{n['time']}  {n['text']}" for n in after["notes"]]


@pytest.mark.parametrize("text, words", [("", "empty note"), ("   \t ", "empty note"),
                                         ("two\nlines", "line break"), ("cr\rhere", "line break"),
                                         ("sep\u2028here", "line break")])
def test_empty_or_multiline_text_is_refused(lab, text, words):
    path = lab.run_dir("n", 0) / "statistic.json"
    before = path.read_bytes()
    assert_one_line_mistake(lab.cli("note", "n/0", text), words)
    assert path.read_bytes() == before


def test_a_live_run_is_refused_and_nothing_is_written(lab):
    folder = lab.run_dir("n", 0)
    before, names = (folder / "statistic.json").read_bytes(), sorted(p.name for p in folder.iterdir())
    runlock.acquire(folder, "n/0")  # as the run's own process holds it while it trains
    try:
        out = lab.cli("note", "n/0", "while it runs")
    finally:
        runlock.release(folder)
    assert_one_line_mistake(out, "n/0", "running")
    assert (folder / "statistic.json").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == names  # no temporary left either


def test_a_run_whose_record_says_running_elsewhere_is_refused(lab):
    path = copy(lab, "away", 0, status="running", host="another-node")
    before = path.read_bytes()
    assert_one_line_mistake(lab.cli("note", "away/0", "x"), "away/0 is running on another-node")
    assert path.read_bytes() == before


@pytest.mark.parametrize("notes", ["oops", {"time": "t", "text": "x"}, 3])
def test_a_damaged_record_is_refused_in_one_line_everywhere(lab, notes):
    """A `notes` of the wrong type damages the record (schema.FIELDS): note refuses it in one
    line, expels says damaged, table skips it; no traceback anywhere."""
    path = copy(lab, "bad", 0, notes=notes)
    before = path.read_bytes()
    for args in (("note", "bad/0", "x"), ("note", "bad/0")):
        assert_one_line_mistake(lab.cli(*args), "bad/0", "notes is")
    assert path.read_bytes() == before
    listed = ok(lab.cli("expels", "bad"))
    assert "damaged" in listed.stdout and "Traceback" not in listed.stderr
    assert_one_line_mistake(lab.cli("record", "-l", "badlist", "bad/0"), "bad/0", "notes is")
    (lab.root / "__statistic__/exper-list").mkdir(parents=True, exist_ok=True)
    (lab.root / "__statistic__/exper-list/badlist.txt").write_text("bad/0\nn/0\n")  # listed before it was damaged
    shown = ok(lab.cli("table", "badlist", "--notes"))
    assert "skipped bad/0" in shown.stderr and "Traceback" not in shown.stderr
    shutil.rmtree(path.parent.parent)
    (lab.root / "__statistic__/exper-list/badlist.txt").unlink()


def test_hand_written_entries_of_another_shape_print_as_json(lab):
    odd = [{"time": "2026-01-01T00:00:00+00:00", "text": "fine"}, "a bare string", {"text": "no time"},
           {"time": "2026-01-02T00:00:00+00:00", "text": "two\nlines"}]
    copy(lab, "odd", 0, notes=odd)
    printed = ok(lab.cli("note", "odd/0")).stdout.splitlines()
    assert printed == ["2026-01-01T00:00:00+00:00  fine", '?  "a bare string"', '?  {"text": "no time"}',
                       '?  {"time": "2026-01-02T00:00:00+00:00", "text": "two\\nlines"}']
    ok(lab.cli("note", "odd/0", "added after"))  # the odd ones are kept as they were
    notes = lab.record("odd", 0)["notes"]
    assert notes[:4] == odd and notes[4]["text"] == "added after"
    shutil.rmtree(lab.run_dir("odd", 0).parent)


def test_expels_marks_runs_with_notes_and_leaves_the_others_as_they_were(lab):
    """`(N notes)` after a noted run's overrides; the lines of runs without notes are the
    lines expels printed before (the last column is not padded, so no width moves)."""
    plain = ok(lab.cli("expels", "plain")).stdout
    copy(lab, "plain", 2, notes=[{"time": "2026-01-01T00:00:00+00:00", "text": "one"}])
    copy(lab, "plain", 3, notes=[{"time": "2026-01-01T00:00:00+00:00", "text": "one"}] * 2)
    lines = ok(lab.cli("expels", "plain")).stdout.splitlines()
    assert lines[:3] == plain.splitlines()  # the header, plain/0, plain/1: byte for byte
    assert lines[3].startswith("plain/2 ") and lines[3].endswith("epochs=1  (1 note)"), lines[3]
    assert lines[4].startswith("plain/3 ") and lines[4].endswith("epochs=1  (2 notes)"), lines[4]
    for id in (2, 3):
        shutil.rmtree(lab.run_dir("plain", id))


def test_table_shows_the_newest_note_with_notes(lab, monkeypatch):
    notes = [{"time": "2026-01-02T00:00:00+00:00", "text": "newest, added first"},
             {"time": "2026-01-01T00:00:00+00:00", "text": "older"}]
    copy(lab, "tn", 0, notes=notes)
    copy(lab, "tn", 1, notes=[{"time": "2026-01-03T00:00:00+00:00", "text": "the group's newest, a | b"}])
    copy(lab, "tn", 2)
    ok(lab.cli("record", "-l", "tn", "tn"))
    table = lab.root / "__statistic__/table"
    plain = ok(lab.cli("table", "tn")).stdout
    assert "note" not in plain.splitlines()[0].split() and "newest" not in plain  # only when asked for
    csv_before = (table / "tn.csv").read_bytes()
    shown = ok(lab.cli("table", "tn", "--notes", "--format", "md")).stdout.splitlines()
    assert shown[0].split()[-1] == "note"
    assert shown[1].endswith("newest, added first") and shown[2].endswith("the group's newest, a | b")
    assert shown[3].split()[-1] != "older"
    md = (table / "tn.md").read_text().splitlines()
    assert md[0].endswith("| note |") and md[3].endswith("| the group's newest, a \\| b |") and md[4].endswith("|  |")
    rows = (table / "tn.csv").read_text().splitlines()
    assert rows[0] == csv_before.decode().splitlines()[0] + ",note"
    grouped = ok(lab.cli("table", "tn", "--group", "tag", "--notes")).stdout.splitlines()
    assert grouped[1].endswith("the group's newest, a | b")
    monkeypatch.setenv("RUNTAG_ROOT", str(lab.root))
    from utils.statistic import load_table
    assert list(load_table("tn", notes=True)["note"].fillna("")) == ["newest, added first", "the group's newest, a | b", ""]
    assert "note" not in load_table("tn").columns
