"""plot and diff (shell: expdiff), on two real runs with a committed change between them."""
import sys
from pathlib import Path

import matplotlib.image
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/: the tooling, for the in-process API

from utils import plot  # noqa: E402
from utils.statistic import load_scalars  # noqa: E402


@pytest.fixture(scope="module")
def pair(shared_project):
    """one/0; then a commit raising config.py's dropout; then two/0 with lr=0.01 at that commit."""
    p = shared_project
    p.cli("run", "-f", "one", "epochs=2", check=True)
    config = (p.root / "code/config.py").read_text()
    assert "dropout = 0.25" in config
    p.commit("code/config.py", config.replace("dropout = 0.25", "dropout = 0.4 "), "more dropout")
    p.cli("run", "-f", "two", "epochs=2", "lr=0.01", check=True)
    return p


def test_plot_writes_a_png_with_one_line_per_run(pair, tmp_path, monkeypatch):
    out = pair.cli("plot", "one", "two", "-o", "curves/acc.png", check=True)
    assert out.stdout.strip() == "curves/acc.png"  # relative to where it was asked from
    png = pair.root / "curves/acc.png"
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (840, 540)  # 7 x 4.5 inches at 120 dpi
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (540, 840) and pixels.std() > 0  # something is drawn

    monkeypatch.setenv("RUNTAG_ROOT", str(pair.root))
    path, figure = plot.curves(["one", "two"], "train/loss", tmp_path / "loss.png")
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["one/0", "two/0"]
    data = load_scalars(["one", "two"], tags=["train/loss"])
    for line, name in zip(lines, ["one/0", "two/0"]):
        run = data[data["run"] == name].sort_values("step")
        assert list(line.get_xdata()) == list(run["step"]) == [20, 40]  # optimizer steps
        assert list(line.get_ydata()) == pytest.approx(list(run["value"]))
    assert figure.axes[0].get_ylabel() == "train/loss" and Image.open(path).format == "PNG"


def test_plot_default_path_and_glob(pair):
    out = pair.cli("plot", "one", "tw*", check=True)
    assert out.stdout.strip() == "__statistic__/plot/val-acc_one_tw.png"
    assert (pair.root / out.stdout.strip()).stat().st_size > 1000


def test_plot_unknown_metric_is_a_user_error(pair):
    out = pair.cli("plot", "one", "--metric", "val/acuracy", "-o", "nothing.png")
    assert out.returncode == 2 and "'val/acuracy'" in out.stderr and "val/acc" in out.stderr
    assert not (pair.root / "nothing.png").exists()


def rows(text, section):
    """{key: (marked as differing, value a, value b)} of one section of diff's side-by-side lines."""
    out, current = {}, None
    for line in text.splitlines():
        if line and not line[0].isspace() and line[0] != "*":
            current = line
        elif current and current.startswith(section) and len(line.split()) >= 3:
            key, a, b = line[2:].split(None, 2)
            out[key] = (line[0] == "*", a, b.strip())
    return out


def test_diff_names_the_changed_keys_and_files(pair):
    out = pair.cli("diff", "one", "two/0", check=True).stdout
    assert rows(out, "overrides") == {"epochs": (False, "2", "2"), "lr": (True, "-", "0.01")}
    shown = rows(out, "hyperparameters")
    assert shown == {"lr": (True, "0.002", "0.01"), "dropout": (True, "0.25", "0.4")}  # equal ones not listed
    assert rows(out, "record")["seed"] == (False, "1234", "1234")
    equal = len(pair.record("one", 0)["hparams"]) - len(shown)
    assert f"({equal} equal, not shown)" in out
    commits = pair.record("one", 0)["commit"][:10], pair.record("two", 0)["commit"][:10]
    assert f"git diff --stat {commits[0]} {commits[1]}" in out
    assert "code/config.py | 2 +-" in " ".join(out.split())
    assert "1 file changed" in out


def test_diff_of_a_run_with_itself(pair):
    out = pair.cli("diff", "one", "one/0", check=True).stdout
    assert "code: same commit" in out
    assert rows(out, "hyperparameters") == {}
    assert not [key for key, (differs, *_) in rows(out, "metrics").items() if differs]


def test_diff_unknown_run_is_a_user_error(pair):
    out = pair.cli("diff", "one", "two/5")
    assert out.returncode == 2 and "unknown run 'two/5'" in out.stderr


def test_expdiff_in_the_shell_leaves_diff_alone(pair):
    out = pair.sh("expdiff one two && type -t diff")
    assert out.returncode == 0, out.stderr
    assert "code/config.py" in out.stdout and out.stdout.strip().endswith("file")
