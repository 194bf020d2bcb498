"""One grammar for naming runs, in every verb that takes runs: `tag`, `tag/id`, a quoted glob."""
import pytest

from conftest import assert_one_line_mistake, make_project, ok

SPECS = ["alpha", "alpha/0", "alph*"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("naming") / "project")
    ok(project.cli("run", "-f", "alpha", "epochs=1"))
    ok(project.cli("run", "-f", "beta", "epochs=1"))  # a second tag, which the glob must not take
    yield project
    project.cli("itb", "--stop")


# Each verb on a spec: (its output, whether the output names the runs the spec means).

def expels(lab, spec, n):
    out = lab.cli("expels", spec)
    return out, "alpha/0" in out.stdout and "beta" not in out.stdout


def record(lab, spec, n):
    out = lab.cli("record", "-l", f"grammar{n}", spec)
    listed = lab.root / f"__statistic__/exper-list/grammar{n}.txt"
    return out, listed.exists() and listed.read_text().splitlines()[0] == "alpha/0"


def plot(lab, spec, n):
    out = lab.cli("plot", spec, "--metric", "train/loss", "-o", lab.root / f"p{n}.png")
    return out, (lab.root / f"p{n}.png").exists() and (lab.root / f"p{n}.png").stat().st_size > 0


def expdiff(lab, spec, n):
    out = lab.cli("expdiff", spec, "beta/0")
    return out, (out.stdout.split() or [""])[0].startswith("alpha/")  # its first column: the run


def itb(lab, spec, n):
    out = lab.cli("itb", spec)
    return out, "TensorBoard over alpha/0" in out.stdout and "beta" not in out.stdout


def con(lab, spec, n):
    out = lab.cli("con", spec)
    return out, "alpha" in out.stderr and "finished" in out.stderr  # it found alpha's runs, and refuses a finished one


def rerun(lab, spec, n):
    out = lab.cli("rerun", spec)
    return out, "reruns alpha/0" in out.stdout  # a bare tag or glob: the tag's first run


VERBS = [expels, record, plot, expdiff, itb, con, rerun]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.__name__)
def test_every_verb_takes_a_tag_a_run_and_a_glob(lab, verb, spec):
    out, names_alpha = verb(lab, spec, SPECS.index(spec) + 10 * VERBS.index(verb))
    if verb is con:
        assert_one_line_mistake(out, "alpha", "finished")
    else:
        assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    assert names_alpha, f"{verb.__name__} {spec}:\n{out.stdout}\n{out.stderr}"


@pytest.mark.parametrize("spec, words", [("nosuch", ["unknown tag 'nosuch'"]),
                                         ("nosu*", ["no run matches 'nosu*'"]),
                                         ("alpha/7", ["unknown run 'alpha/7'"])])
@pytest.mark.parametrize("verb", ["expels", "record", "plot", "expdiff", "itb", "con", "rerun"])
def test_every_verb_refuses_a_name_of_no_run_alike(lab, verb, spec, words):
    before = sorted(p.name for p in (lab.root / "__result__").iterdir())
    args = [spec, "alpha/0"] if verb == "expdiff" else [spec]
    assert_one_line_mistake(lab.cli(verb, *args), *words)
    assert sorted(p.name for p in (lab.root / "__result__").iterdir()) == before


def test_a_glob_over_several_tags_names_no_single_run(lab):
    assert_one_line_mistake(lab.cli("expdiff", "*", "alpha/0"), "names runs of 2 tags", "alpha, beta")
    ok(lab.cli("expels", "*"))  # a verb of many runs takes them all
