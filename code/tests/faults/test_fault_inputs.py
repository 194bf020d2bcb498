"""Issue 12: bad input is one line `runtag: ...`, exit 2, nothing written; never a traceback.

First the cases found by hand, through the real CLI. Then generated input (hypothesis) fed to
the CLI's own parsers in-process: 300 tag names, 250 run specs `tag/id`, 300 override lists
`key=value ...`, 200 list names and 200 title files, 1,250 examples, each accepted (and then
safe: the property each test states) or refused with UserError, never another exception. Last,
40 generated command lines through the real CLI (marked slow): exit 0, or exit 2 with one
`runtag: ` line; nothing written, in the project or beside it.
"""
import fnmatch
import json
import os
import re
import socket
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_one_line_mistake

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # code/: the template's modules

from utils import gitrepo, overrides, runs  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.settings import check as check_config  # noqa: E402
from utils.statistic import record, title  # noqa: E402

SAFE = set(string.ascii_letters + string.digits + "-_.+")
IDS = (0, 1, 2, 3)
CONFIG = overrides.load_config()
NUMBERS = [k for k, v in CONFIG.items() if type(v) in (int, float)]  # config.py's numeric keys
QUIET = dict(deadline=None, database=None)  # a failure prints its example; none is stored to replay


def fake_run(p, tag, id, commit):
    """A finished run's folder as `run` leaves it: its record is all the listings read."""
    run_dir = p.run_dir(tag, id)
    run_dir.mkdir(parents=True)
    (run_dir / "statistic.json").write_text(json.dumps({
        "version": 1, "tag": tag, "id": id, "status": "finished", "commit": commit, "command": f"run {tag}",
        "seed": 1, "fixed_seed": False, "overrides": {"epochs": 2}, "hparams": {"best_metric": "val/acc"},
        "metrics": {"best/val_acc": 0.5, "best/epoch": 2}, "epoch": 2, "epochs": 2, "start": "", "end": "",
        "duration_s": 1.0, "host": socket.gethostname(), "pid": 1, "world_size": 1, "parent": None}))


@pytest.fixture(scope="module")
def lab(shared_project):
    """Runs s/0..s/3 (finished), a folder `²` and one `٣` among them (no ids: not ASCII digits),
    a tag `taken` on the first commit, HEAD one commit later, a data set `mine` under __data__/,
    and an empty folder `outside` beside the project that nothing may write into."""
    p = shared_project
    first = p.git("rev-parse", "HEAD")
    for id in IDS:
        fake_run(p, "s", id, first)
    for name in ("²", "٣"):
        (p.root / "__result__/s" / name).mkdir()
    p.git("tag", "-a", "taken", "-m", "an older experiment")
    p.commit("README.md", "moved on\n", "a later commit")
    (p.root / "__data__/mine").mkdir(parents=True)
    (p.root.parent / "outside").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNTAG_ROOT", str(p.root))  # the in-process parsers look here
        yield p


def snapshot(p):
    """Every file and folder of the project but git's and Python's own (.git, __pycache__), the
    tags, and what lies beside it."""
    files = sorted(str(f.relative_to(p.root)) for f in p.root.rglob("*")
                   if not {".git", "__pycache__"} & set(f.relative_to(p.root).parts))
    return files, p.git("tag", "--list"), sorted(os.listdir(p.root.parent)), os.listdir(p.root.parent / "outside")




def assert_refused(p, *args, words=()):
    """The command is a one-line mistake and changes nothing on disk."""
    before = snapshot(p)
    assert_one_line_mistake(p.cli(*args), *words)
    assert snapshot(p) == before


# ---- found by hand ----------------------------------------------------------------------------

@pytest.mark.parametrize("tag, words", [
    ("t$(touch${IFS}MK)", ["A-Z a-z 0-9 - _ . +"]),  # a shell pasting `rerun TAG` would run touch
    ("a;b", []), ("a|b", []), ("a&b", []), ("a`id`", []), ("a'b", []), ("é", []),
    ("x" * 101, ["101 characters"]),
    ("x" * 300, []),                                  # was GitCommandError: File name too long
    ("HEAD", ["git reserves it"]), ("FETCH_HEAD", ["git reserves it"]), ("ORIG_HEAD", []),
    ("cafe", ["commit id"]), ("2024", ["commit id"]), ("0123456789abcdef0123456789abcdef01234567", []),
    ("main", ["git reads it as refs/heads/main"]),
    ("epochs=3", []),                                 # a forgotten tag: the override is no tag
])
def test_an_unsafe_or_ambiguous_tag_is_refused(lab, tag, words):
    # epochs=0 would be refused next: a tag let through shows as that message, and nothing trains
    assert_refused(lab, "run", tag, "epochs=0", words=["invalid tag name", *words])
    assert not (lab.root / "MK").exists()


def test_a_safe_tag_passes_the_name_check(lab):
    for tag in ("v1.2", "lr0.1+wd", "A-b_c", "x" * 100, "beefy", "AHEAD"):
        gitrepo.check_tag_name(tag)
    assert_refused(lab, "run", "lr0.1+wd", "epochs=0", words=["epochs=0"])  # on to the overrides


@pytest.mark.parametrize("override, key", [
    ("data=x", "data"),                 # was a tag and a `failed` run: no __data__/x
    ("data=..", "data"),
    ("model=''", "model"),              # was: ValueError in model.build, a `failed` run
    ("model=nosuch", "model"),
    ("best_metric=nosuch", "best_metric"),
    ("best_metric==", "best_metric"),   # was: KeyError in main.py
    ("device=cpux", "device"),          # the check took any prefix `cpu`
    ("device=cuda:", "device"),
    ("device=cpu" + "x" * 8000, "at most 1000 characters"),
    ("lr=None", "lr"),                  # was: TypeError in the check itself
    ("dropout=None", "dropout"),
])
def test_an_override_the_run_would_trip_over_is_refused_up_front(lab, override, key):
    assert_refused(lab, "run", "fresh", override, words=["invalid config value", key])


def test_existing_data_and_every_device_form_pass(lab):
    for item in ("data=mine", "data=digits", "model=cnn", "best_metric=train/loss", "device=auto",
                 "device=cpu", "device=cuda", "device=cuda:12"):
        check_config(overrides.apply(CONFIG, overrides.parse([item], CONFIG)))


def test_a_deeply_nested_override_value_is_a_mistake():
    with pytest.raises(UserError):
        overrides.parse(["device=" + "-" * 8000], CONFIG)


def test_a_deeply_nested_title_file_is_a_mistake():
    with pytest.raises(UserError):
        title.parse("[" * 1000)


@pytest.mark.parametrize("args", [
    ("record", "-l", "n" * 300, "s/0"), ("title", "n" * 300), ("table", "n" * 300),  # were OSError: Errno 36
    ("record", "-l", "n" * 121, "s/0"), ("record", "-l", "é", "s/0"),
])
def test_a_list_name_no_file_can_have_is_refused(lab, args):
    assert_refused(lab, *args, words=["invalid list name"])


@pytest.mark.parametrize("args", [
    ("con", "s/²"), ("rerun", "s/²"), ("expels", "s/²"), ("record", "s/²"), ("diff", "s/²", "s/0"),
    ("expels", "s/٣"), ("con", "s/٣"),   # int('٣') is 3: was s/3
    ("rerun", "s/" + "9" * 5000),        # int() of 5000 digits raises
    ("rerun", "n" * 300),                # the tag's folder cannot exist: ENAMETOOLONG
])
def test_an_id_of_other_than_ascii_digits_is_an_unknown_run(lab, args):
    assert_refused(lab, *args, words=["unknown"])


def test_expls_skips_a_folder_whose_name_is_no_id(lab):
    out = lab.cli("expls")
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.splitlines()[1].split()[:3] == ["s", str(len(IDS)), str(len(IDS))]  # ² and ٣ are no runs


# ---- generated, in-process --------------------------------------------------------------------

def accepted(check, *args):
    """check(*args)'s result; None when it refused with a one-line UserError. Any other
    exception propagates: the failure hypothesis reports."""
    try:
        result = check(*args)
    except UserError as err:
        assert "\n" not in str(err) and " — " in str(err)
        return None, False
    return result, True


def generated(strategy, count, parse, holds, what):
    """Feed `count` examples of strategy to parse: each is refused in one line (UserError) or
    accepted, and then holds(example, result) checks what an accepted one must be."""
    seen = []

    @settings(max_examples=count, **QUIET)
    @given(strategy)
    def check(example):
        result, ok = accepted(parse, example)
        seen.append(ok)
        if ok:
            holds(example, result)

    check()
    print(f"{len(seen)} generated {what}, {sum(seen)} accepted")


ODD = "$()`;|&'\" \t\n/\\,~^:?*[]{}@!#%<>"  # what a shell, git or a file system reads otherwise
names = st.one_of(
    st.text(string.ascii_letters + string.digits + "-_.+=" + ODD + "²٣éß", max_size=24),
    st.text(max_size=12),  # any character
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "1", "a.", "-", "ab"]), st.integers(90, 300)),
    st.sampled_from(["HEAD", "head", "FETCH_HEAD", "MERGE_HEAD", "main", "cafe", "deadbeef", "taken", "s",
                     "a..b", "a.lock", "a.", ".a", "_a", "-a", "x" * 100, "x" * 101, "t$(touch${IFS}MK)"]),
)


def test_generated_tag_names_are_accepted_safely_or_refused(lab):
    """300 names. An accepted one is made of the safe characters only, git takes it as a tag
    name, and it resolves to nothing else in the repository (or is that tag already)."""
    def holds(tag, _):
        assert set(tag) <= SAFE and len(tag) <= 100 and not tag.startswith(("-", ".", "_"))
        assert lab_git(lab, "check-ref-format", f"refs/tags/{tag}").returncode == 0
        assert resolved(lab, tag) == resolved(lab, f"refs/tags/{tag}")

    generated(names, 300, gitrepo.check_tag_name, holds, "tag names")


def lab_git(p, *args):
    return subprocess.run(["git", *args], cwd=p.root, capture_output=True, text=True)


def resolved(p, rev):
    return lab_git(p, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}").stdout


ids = st.one_of(st.sampled_from(["", "0", "3", "00", "4", "²", "٣", "0x1", "-1", " 1", "1 ", "9" * 5000]),
                st.integers(0, 10**20).map(str), st.text("0123456789²³٣١߀", max_size=6), st.text(max_size=6))
specs = st.one_of(st.sampled_from(["s", "s/0", "s/3", "s/03", "s/", "s/4", "s/²", "s/٣", "s/0/", "s/0/1"]),
                  st.builds(lambda i: f"s/{i}", ids),
                  st.builds(lambda t, s, i: t + s + i, st.sampled_from(["s", "taken", "", ".", "..", "s/0"]) | names,
                            st.sampled_from(["/", "", "//"]), ids),
                  st.text(max_size=10))


def test_generated_run_specs_name_existing_runs_or_are_refused(lab):
    """250 specs `tag/id`. An accepted one names folders of the tag (of tags the glob matches)
    that exist, ids in ASCII digits, the one asked for when there is an id; ids(tag) never raises."""
    def resolve(spec):
        assert all(isinstance(i, int) for i in runs.ids(spec.partition("/")[0]))  # `rerun` asks before resolving
        return [run.dir for run in runs.resolve([spec])]

    def holds(spec, dirs):
        tag, _, id = spec.partition("/")
        assert dirs and all(d.is_dir() and fnmatch.fnmatchcase(d.parent.name, tag) and d.name.isascii()
                            and d.name.isdigit() for d in dirs)
        assert not id or all(int(d.name) == int(id) for d in dirs)

    generated(specs, 250, resolve, holds, "run specs")


KEYS = list(CONFIG)
values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["None", "True", "''", "'x'", "[]", "[1, 2]", "{}", "()", "1e999", "-1", "0", "0.5", "1",
                     "2**8", "cpu", "cpux", "cuda", "cuda:0", "cuda:", "cuda:²", "auto", "cnn", "digits", "mine",
                     "..", "x/y", "val/acc", "val/loss", "=", "adam", "sgd", "max", "step", "b" * 1001]),
    st.builds(repr, st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)),
)
# half of the items are near what a run takes, so that accepted configs are many, not one in 300
near = st.sampled_from(KEYS).flatmap(lambda key: st.tuples(
    st.just(key), st.just("="), st.sampled_from([repr(CONFIG[key]), str(CONFIG[key]), "0.5", "2", "cpu", "cuda:1",
                                                 "mine", "cnn", "val/loss", "sgd", "step", "min"])))
anything = st.tuples(st.sampled_from(KEYS) | st.text(max_size=6), st.sampled_from(["=", "", "==", " = "]), values)
items = st.lists((near | anything).map("".join), max_size=3)


def test_generated_overrides_give_a_config_that_runs_or_are_refused(lab):
    """300 lists of `key=value`. What passes overrides.parse and the config checks is what a
    run can start with: a known device, data set, model and metric, numbers where numbers go."""
    def holds(_, cfg):
        assert re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", cfg["device"])
        assert cfg["data"] in ("digits", "mine") and cfg["model"] == "cnn"
        assert cfg["best_metric"] in ("val/acc", "val/loss", "train/acc", "train/loss")
        assert all(type(cfg[k]) in (int, float) for k in NUMBERS)

    generated(items, 300, checked_config, holds, "override lists")


def checked_config(argv):
    """The config a run would get from these overrides, as `run` checks it."""
    cfg = overrides.apply(CONFIG, overrides.parse(argv, CONFIG))
    check_config(cfg)
    return cfg


def test_generated_list_names_are_file_names_or_refused(lab, tmp_path):
    """200 names. An accepted one makes every file a list has: its list, title and tables."""
    def holds(name, _):
        assert title.path(name).name == f"{name}.json"
        for suffix in (".txt", ".json", ".csv", ".group.csv", ".group.tex"):
            (tmp_path / f"{name}{suffix}").touch()
            (tmp_path / f"{name}{suffix}").unlink()

    generated(names, 200, record.check_name, holds, "list names")


section = st.lists(st.text(max_size=8) | st.integers() | st.none(), max_size=4)
titles = st.one_of(
    st.text(max_size=60),
    st.builds(lambda data, comment, comma: json.dumps(data, indent=2).replace("\n", f"{comment}\n", 2)
              .replace("\n  ]", f"{comma}\n  ]"),
              st.dictionaries(st.sampled_from(["hparams", "metrics", "other"]), section, max_size=3)
              | st.lists(st.integers(), max_size=2),
              st.sampled_from(["", " // x", "  # y \"z\"", " /*"]), st.sampled_from(["", ",", ",,"])),
)


def test_generated_title_files_parse_or_are_refused(lab):
    """200 texts. An accepted one is an object of key lists, strings only."""
    def holds(_, data):
        assert isinstance(data, dict)
        assert all(isinstance(k, str) for s in title.SECTIONS for k in data.get(s, []))

    generated(titles, 200, title.parse, holds, "title files")


# ---- generated, through the real CLI ---------------------------------------------------------

def argv_word(word):
    """A word a command line can carry: no NUL, no lone surrogate."""
    return "\x00" not in word and not any(0xD800 <= ord(c) <= 0xDFFF for c in word)


arg = (st.text(max_size=12) | names).filter(argv_word)
command_lines = st.one_of(
    # a tag let through meets epochs=0: nothing runs. Not `-f`: `run -f epochs=0` is the tag
    # `epochs=0`, a real run (and `--` does not help: parse_intermixed_args drops it)
    st.tuples(st.just("run"), arg.filter(lambda w: not w.startswith("-")), st.just("epochs=0")),
    st.tuples(st.just("run"), st.just("taken"), items.filter(lambda l: all(map(argv_word, l)))),
    st.tuples(st.sampled_from(["expels", "con"]), specs.filter(argv_word)),
    st.tuples(st.just("diff"), arg, st.just("s/0")),
    st.tuples(st.just("record"), st.just("-l"), arg, st.just("nope/0")),
    st.tuples(st.sampled_from(["title", "table"]), arg),
)


@pytest.mark.slow
def test_generated_command_lines_are_one_line_mistakes_and_write_nothing(lab):
    """40 command lines, each a subprocess: `run` of a generated tag (then epochs=0) or of the
    tag `taken` (on another commit) with generated overrides, `expels`/`con`/`diff` of generated
    specs, `record -l`/`title`/`table` of generated list names. None can start a run; each exits
    0 or 2 with one line, and the project, its tags and the folder beside it stay as they were."""
    seen = []
    before = snapshot(lab)

    @settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], **QUIET)
    @given(command_lines)
    def check(argv):
        argv = [w for part in argv for w in ([part] if isinstance(part, str) else part)]
        out = lab.cli(*argv)
        seen.append(out.returncode)
        assert "Traceback" not in out.stderr, out.stderr[-2000:]
        if out.returncode != 0:
            assert_one_line_mistake(out)
        assert snapshot(lab) == before

    check()
    print(f"{len(seen)} generated command lines, {seen.count(0)} exit 0, {seen.count(2)} exit 2")


# ---- generated sweep files (issue 23) --------------------------------------------------------

scalar = st.none() | st.booleans() | st.integers() | st.integers(10**18, 10**30) | st.floats() | st.text(max_size=8)
yaml_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(scalar.filter(lambda k: k == k), inner, max_size=3), max_leaves=8)
sweep_key = st.sampled_from(KEYS + ["default", "search", "nosuch", "lr ", ""]) | st.integers() | st.none() | st.booleans()
sweep_value = st.one_of(
    yaml_value,
    st.lists(st.sampled_from([0.1, 1e-3, "1e-3", "adam", "sgd", 2, -1, None, True, [1], {"a": 1}, 10**40]), max_size=3),
    st.builds(lambda f, a, b, opt: f"{f}({a}, {b}{opt})", st.sampled_from(["uniform", "loguniform", "int", "normal", ""]),
              st.sampled_from(["0", "1", "-1", "1e-4", "0.1", "nan", "inf", "1e999", "x", "16", "10**400", "[]"]),
              st.sampled_from(["0", "1", "0.5", "128", "-inf", "True", "'a'", "2**99"]),
              st.sampled_from(["", ", step=16", ", step=0", ", step=-1", ", log=true", ", log=1", ", step=1.5", ", x=1"])),
)
documents = st.dictionaries(sweep_key, sweep_value, max_size=4) | yaml_value
search_settings = st.dictionaries(
    st.sampled_from(["method", "trials", "metric", "goal", "prune", "grace", "eta", "other"]),
    st.sampled_from(["grid", "random", "tpe", "max", "min", "median", "asha", "none", "best/val_acc", "val/acc",
                     0, 1, 3, -1, 10**30, 2.5, None, True, [], {}]), max_size=7) | yaml_value
search_files = st.builds(lambda s, d, rest: [{"search": s, **({"default": d} if d is not None else {})}, *rest],
                         search_settings, st.none() | st.dictionaries(sweep_key, scalar, max_size=2),
                         st.lists(documents, max_size=2))
sweep_texts = st.one_of(
    st.lists(documents, max_size=3).map(lambda docs: yaml.safe_dump_all(docs, allow_unicode=True)),
    search_files.map(lambda docs: yaml.safe_dump_all(docs, allow_unicode=True)),
    st.text(max_size=80),
    st.sampled_from(["- a: 1\n- b: 2\n", "[[1, [2]]]", "~", "1: [0.1]\n", "lr: !!python/object:os.system x\n",
                     "lr: &a [*a]\n", "epochs: [99999999999999999999999999]\n", "search: {method: grid}\n---\nlr: [1]\n",
                     "search:\n  metric: best/val_acc\n---\nlr: uniform(1, 0)\n", "default: [1]\n---\nlr: [1]\n"]),
)


def sweep_plan(text):
    from utils.sweep import plan
    return plan.parse(text, CONFIG, name="gen.yaml")


def test_generated_sweep_files_parse_or_are_refused(lab):
    """300 sweep files: documents of wrong types (lists of mappings, nested lists, null, numbers
    as keys, huge integers), `search:` documents with bad settings and distributions, any text.
    Each is refused in one line or gives combinations (or a search) of checked overrides."""
    from utils.sweep import space

    def holds(_, found):
        if isinstance(found, space.Search):
            assert found.trials >= 1 and found.space and all(isinstance(k, str) for k in found.space)
        else:
            assert found and all(isinstance(c, dict) and all(k in CONFIG for k in c) for c in found)

    generated(sweep_texts, 300, sweep_plan, holds, "sweep files")


def test_generated_sweep_file_bytes_are_read_or_refused(lab, tmp_path):
    """100 files of bytes (not UTF-8 among them, a BOM, NULs) through plan.load: read or one line."""
    from utils.sweep import plan
    seen = []

    @settings(max_examples=100, **QUIET)
    @given(st.binary(max_size=40) | st.builds(lambda t, b: t.encode() + b, sweep_texts, st.binary(max_size=4)))
    def check(data):
        path = tmp_path / "gen.yaml"
        path.write_bytes(data)
        seen.append(accepted(plan.load, path, CONFIG)[1])

    check()
    print(f"{len(seen)} generated sweep file bytes, {sum(seen)} accepted")


@pytest.mark.slow
def test_generated_sweep_files_through_the_cli_are_one_line_or_a_plan(lab, tmp_path):
    """25 generated sweep files through `sweep --dry-run` (a subprocess each): exit 0 or one line,
    exit 2; never a traceback, nothing written."""
    before = snapshot(lab)
    seen = []

    @settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], **QUIET)
    @given(sweep_texts | st.binary(max_size=30))
    def check(data):
        path = tmp_path / "gen.yaml"
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        out = lab.cli("sweep", "gen", path, "--dry-run")
        seen.append(out.returncode)
        assert "Traceback" not in out.stderr, out.stderr[-2000:]
        if out.returncode != 0:
            assert_one_line_mistake(out)
        assert snapshot(lab) == before

    check()
    print(f"{len(seen)} generated sweep files through the CLI, {seen.count(0)} exit 0, {seen.count(2)} exit 2")
