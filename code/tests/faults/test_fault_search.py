"""Issue 23, items 2 and 4: the study is never wrong about a finished run. A search's driver that
dies (kill -9) leaves trials running in its journal; the repeat ends them from their runs'
records, so a run that finished without its driver is counted, never run again, and is in the
study and the table. A journal whose last line is torn is mended with one warning (the bytes set
aside beside it); a damaged line before the last is one line, exit 2. Generated journals
(hypothesis) through --dry-run's reader and the real opening path: they work, or are refused
with UserError, never another exception.

Whether a killed driver's runs die with it (parent-death) or go on as orphans, the tests count
what happened rather than assume it: a finished run is counted once, an interrupted one asked again.
"""
import json
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import assert_one_line_mistake, make_project, need_module, ok, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # code/: the template's modules

from utils import overrides  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.sweep import plan  # noqa: E402

CONFIG = overrides.load_config()
COMPLETE, PRUNED = 1, 2  # Optuna's TrialState values, as the journal writes them
PROGRESS_S = 600  # a wait on a run's progress: long, since a loaded machine slows progress, never stops it


def search_file(trials, epochs=2):
    return (f"search:\n  method: random\n  trials: {trials}\n  metric: best/val_acc\n  goal: max\n  prune: none\n"
            f"default:\n  epochs: {epochs}\n---\nlr: loguniform(1e-3, 1e-1)\n")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    need_module("optuna")
    return make_project(tmp_path_factory.mktemp("fault-search") / "project")


def commit(project, name, text):
    (project.root / "code/sweeps").mkdir(exist_ok=True)
    project.commit(f"code/sweeps/{name}.yaml", text, f"search {name}")
    return f"code/sweeps/{name}.yaml"


def journal_path(project, tag):
    return project.root / f"__statistic__/search/{tag}.journal"


def records(project, tag):
    base = project.root / "__result__" / tag
    found = {}
    for folder in sorted(base.iterdir() if base.is_dir() else [], key=lambda p: p.name):
        try:
            found[f"{tag}/{folder.name}"] = json.loads((folder / "statistic.json").read_text())
        except (OSError, ValueError):
            pass
    return found


def study(project, tag):
    """{run name: final state} of the journal's trials that name their run, read from its JSON lines."""
    trials, names, states = 0, {}, {}
    for line in journal_path(project, tag).read_text().splitlines():
        event = json.loads(line)  # every line whole JSON
        if event["op_code"] == 4:
            trials += 1
        elif event["op_code"] == 8 and "run" in event["user_attr"]:
            names[event["trial_id"]] = event["user_attr"]["run"]
        elif event["op_code"] == 6 and event["state"] != 0:
            states[event["trial_id"]] = event["state"]
    return {name: states.get(trial) for trial, name in names.items()}


def assert_exactly_the_budget(project, tag, budget):
    """Exactly `budget` runs finished or pruned, none of them a second run of the same values, each
    counted in the study, listed in sweep-<tag> and a row of its table."""
    done = {name: r for name, r in records(project, tag).items() if r["status"] in ("finished", "pruned")}
    assert len(done) == budget, {name: r["status"] for name, r in records(project, tag).items()}
    assert len({overrides.canonical(r["overrides"]) for r in done.values()}) == budget  # none run twice
    told = study(project, tag)
    assert all(told.get(name) in (COMPLETE, PRUNED) for name in done), (told, sorted(done))
    listed = (project.root / f"__statistic__/exper-list/sweep-{tag}.txt").read_text().split()
    assert sorted(listed) == sorted(done)
    table = (project.root / f"__statistic__/table/sweep-{tag}.csv").read_text().splitlines()[1:]
    assert sorted(row.split(",")[0] for row in table) == sorted(done)


def start(project, tag, path):
    return project.start("sweep", tag, path, "--workers", "2")


def status(project, name):
    tag, id = name.split("/")
    try:
        return project.record(tag, int(id))["status"]
    except (OSError, ValueError, KeyError):
        return None


def test_a_run_that_finished_without_its_driver_is_counted_not_run_again(project):
    """The driver is stopped (SIGSTOP: hung) while its runs train, one finishes unwatched, then the
    driver is killed (-9): the repeat counts that run, and the other whatever became of it."""
    path = commit(project, "gone", search_file(trials=4))
    driver = start(project, "gone", path)
    wait_for(lambda: len([n for n in records(project, "gone") if status(project, n) == "running"]) == 2,
             PROGRESS_S, "two trials training")
    driver.send_signal(signal.SIGSTOP)
    wait_for(lambda: any(r["status"] == "finished" for r in records(project, "gone").values()),
             PROGRESS_S, "a run that finishes while its driver is stopped")
    driver.kill()
    driver.communicate()
    unwatched = [n for n, r in records(project, "gone").items() if r["status"] == "finished"]
    assert all(study(project, "gone").get(n) is None for n in unwatched)  # the journal never heard of its end
    again = ok(project.cli("sweep", "gone", path, "--workers", "2"))
    assert "runtag: search gone: 4 of 4 trials finished or pruned" in again.stdout, again.stdout + again.stderr
    assert_exactly_the_budget(project, "gone", 4)
    assert all(study(project, "gone")[n] == COMPLETE for n in unwatched)
    repeat = ok(project.cli("sweep", "gone", path, "--workers", "2"))
    assert "4 finished or pruned already, 0 to run" in repeat.stdout


def test_a_torn_last_journal_line_is_set_aside_with_one_warning(project):
    path = commit(project, "torn", search_file(trials=2, epochs=1))
    ok(project.cli("sweep", "torn", path, "--workers", "2"))
    journal = journal_path(project, "torn")
    whole = journal.read_bytes()
    cut = whole[:-9]  # the last line (the last trial's end) cut short, as a kill mid-write leaves it
    journal.write_bytes(cut)
    torn = cut[cut.rfind(b"\n") + 1:]
    dry = ok(project.cli("sweep", "torn", path, "--dry-run", "--trials", "3"))
    assert "1 to run" in dry.stdout and journal.read_bytes() == cut  # read as if absent, never written
    more = ok(project.cli("sweep", "torn", path, "--workers", "2", "--trials", "3"))
    warnings = [line for line in more.stderr.splitlines() if line.startswith("runtag: warning:")]
    assert len(warnings) == 1 and "torn.journal" in warnings[0] and "torn.journal.torn" in warnings[0], more.stderr
    assert "3 trials, 2 finished or pruned already, 1 to run" in more.stdout  # the cut trial's run: counted
    assert torn in journal.with_name("torn.journal.torn").read_bytes().splitlines()
    assert journal.read_bytes().startswith(cut[:len(cut) - len(torn)])  # every whole line kept, as it was
    assert_exactly_the_budget(project, "torn", 3)


def test_a_damaged_middle_line_is_refused_in_one_line(project):
    path = commit(project, "mid", search_file(trials=1, epochs=1))
    ok(project.cli("sweep", "mid", path))
    journal = journal_path(project, "mid")
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2][:20] + b"\n"
    journal.write_bytes(b"".join(lines))
    before = journal.read_bytes()
    for extra in (["--dry-run"], ["--trials", "2"]):
        out = project.cli("sweep", "mid", path, *extra)
        assert_one_line_mistake(out, "mid.journal", "line 3", "head -n 2")
        assert journal.read_bytes() == before and not journal.with_name("mid.journal.torn").exists()
    assert len(records(project, "mid")) == 1


def kill_at(project, tag, path, moment, hang):
    """Start the search's driver and kill -9 it `moment` seconds later (or when it ends); with
    `hang`, it is stopped (SIGSTOP) first, until one of its runs ends or `hang` seconds pass: a
    driver that was not there to see that end. Returns the runs that ended meanwhile."""
    driver = start(project, tag, path)
    deadline = time.monotonic() + moment
    while driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    running = {n for n, r in records(project, tag).items() if r["status"] == "running"}
    if hang and driver.poll() is None and running:
        driver.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + hang  # the end of the hang, not a limit on the test
        while time.monotonic() < deadline and all(status(project, n) == "running" for n in running):
            time.sleep(0.05)
    driver.kill()
    driver.communicate()
    return {n: status(project, n) for n in running if status(project, n) != "running"}


@pytest.mark.slow
def test_a_search_killed_at_five_random_moments_reaches_exactly_its_budget(project):
    path = commit(project, "kills", search_file(trials=6))
    rng = random.Random(23)
    moments = [(rng.uniform(1, 25), 30 * (n % 2)) for n in range(5)]  # the 2nd and 4th: a hung driver
    unwatched = {}
    for moment, hang in moments:
        unwatched.update(kill_at(project, "kills", path, moment, hang))
    final = ok(project.cli("sweep", "kills", path, "--workers", "2"))
    statuses = {n: r["status"] for n, r in records(project, "kills").items()}
    print(f"moments {moments}: runs ended as their driver died {unwatched}; all runs {statuses}")
    assert "runtag: search kills: 6 of 6 trials finished or pruned" in final.stdout, (moments, final.stdout)
    assert_exactly_the_budget(project, "kills", 6)


# Generated journals: a real search's journal, with generated lines or bytes added or cut.

SEARCH = plan.parse(search_file(trials=2, epochs=1), CONFIG)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 12), st.floats(allow_nan=False), st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=8)


@pytest.fixture(scope="module")
def base(project, tmp_path_factory):
    """(root, journal bytes): a copy of a finished search's results, the journal to vary, in-process."""
    path = commit(project, "gen", search_file(trials=2, epochs=1))
    ok(project.cli("sweep", "gen", path, "--workers", "2"))
    root = tmp_path_factory.mktemp("generated")
    for folder in ("__result__/gen", "__statistic__/search"):
        shutil.copytree(project.root / folder, root / folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNTAG_ROOT", str(root))
        yield root, journal_path(project, "gen").read_bytes()


def mutated(lines):
    """A line of the journal with one field changed or dropped."""
    return st.tuples(st.sampled_from(lines), st.text(max_size=12), VALUES, st.booleans()).map(
        lambda t: {**{k: v for k, v in json.loads(t[0]).items() if not (t[3] and k == t[1])},
                   **({} if t[3] else {t[1] if t[1] else "op_code": t[2]})})


def additions(journal):
    lines = journal.splitlines()
    line = st.one_of(VALUES, mutated(lines),
                     st.fixed_dictionaries({"op_code": st.integers(-1, 11), "worker_id": st.text(max_size=4)},
                                           optional={"trial_id": st.integers(-1, 4), "study_id": st.integers(-1, 1),
                                                     "state": st.integers(-1, 5), "values": VALUES,
                                                     "user_attr": VALUES, "params": VALUES, "step": VALUES,
                                                     "intermediate_value": VALUES, "datetime_start": VALUES}))
    text = line.map(lambda v: json.dumps(v).encode() + b"\n")
    return st.lists(st.one_of(text, st.binary(max_size=40), text.map(lambda b: b[:len(b) // 2])), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_journals_work_or_are_one_line(base, data):
    from utils.sweep import search

    root, whole = base
    journal = root / "__statistic__/search/gen.journal"
    added = b"".join(data.draw(additions(whole)))
    where = data.draw(st.sampled_from(["end", "middle", "cut"]))
    lines = whole.splitlines(keepends=True)
    if where == "end":
        text = whole + added
    elif where == "middle":
        text = b"".join(lines[:3]) + added + b"".join(lines[3:])
    else:
        text = whole[:data.draw(st.integers(0, len(whole)))]
    journal.write_bytes(text)
    journal.with_name("gen.journal.torn").unlink(missing_ok=True)
    try:
        search.remaining("gen", SEARCH, 3)
    except UserError:
        pass
    assert journal.read_bytes() == text  # --dry-run's reader writes nothing
    try:
        opened = search.Study("gen", SEARCH, 3, 0)
        opened.job()
        search.runs_of("gen", SEARCH)
    except UserError:
        assert journal.read_bytes() == text  # refused: nothing changed
        event(f"{where}: refused")
        return
    event(f"{where}: works" + (", a torn line set aside" if journal.with_name("gen.journal.torn").exists() else ""))
    after = journal.read_bytes()
    assert after.endswith(b"\n") and all(json.loads(line) is not None for line in after.splitlines())
    aside = journal.with_name("gen.journal.torn")
    torn = aside.read_bytes() if aside.exists() else b""
    if torn and not text.endswith(b"\n"):
        torn = torn[:-1]  # the newline that ends a line cut short in the .torn file
    assert text.endswith(torn) and after.startswith(text[:len(text) - len(torn)])  # whole lines kept as they were


@pytest.mark.slow
@settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_journals_through_the_cli_work_or_are_one_line(project, data):
    """The same, through the real command: --dry-run, then a repeat (its budget reached, it runs
    nothing but opens the study, ends its trials and builds the table): exit 0, or one line, exit 2."""
    path = "code/sweeps/cli.yaml"
    journal = journal_path(project, "cli")
    if not journal.exists():
        commit(project, "cli", search_file(trials=1, epochs=1))
        ok(project.cli("sweep", "cli", path))
        journal.with_name("cli.journal.whole").write_bytes(journal.read_bytes())
    whole = journal.with_name("cli.journal.whole").read_bytes()
    text = whole + b"".join(data.draw(additions(whole)))
    journal.write_bytes(text)
    dry = project.cli("sweep", "cli", path, "--dry-run")
    assert (dry.returncode == 0 and not dry.stderr) or dry.returncode == 2, dry.stdout + dry.stderr
    if dry.returncode == 2:
        assert_one_line_mistake(dry, "cli.journal")
    assert journal.read_bytes() == text
    again = project.cli("sweep", "cli", path)
    if again.returncode == 2:
        assert_one_line_mistake(again, "cli.journal")
    else:
        assert again.returncode == 0 and "Traceback" not in again.stderr, again.stdout + again.stderr
        assert all(json.loads(line) is not None for line in journal.read_bytes().splitlines())
