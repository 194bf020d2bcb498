"""`key=value` overrides: an unknown key names the key it most likely meant (issue 11), in-process
against code/config.py's keys, then through `run` in a fresh project."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/: the template's modules

from utils import overrides  # noqa: E402
from utils.errors import UserError  # noqa: E402

CONFIG = overrides.load_config()


@pytest.mark.parametrize("typo, meant", [
    ("lrate", "lr"),            # a key lengthened: difflib alone says lr_step
    ("lrr", "lr"),
    ("LR", "lr"),               # case does not hide a key
    ("epoch", "epochs"),        # a key cut short
    ("batch", "batch_size"),
    ("lr_s", "lr_step"),        # cut short from a longer key rather than lengthened from lr
    ("chanels", "channels"),    # neither: edit distance
    ("dropuot", "dropout"),
    ("weightdecay", "weight_decay"),
])
def test_a_typo_suggests_the_key_it_most_likely_meant(typo, meant):
    assert overrides.suggest(typo, CONFIG) == meant


def test_a_word_like_no_key_suggests_none():
    assert overrides.suggest("xyzzy", CONFIG) is None
    with pytest.raises(UserError) as err:
        overrides.parse(["xyzzy=1"], CONFIG)
    assert "see code/config.py" in str(err.value)


def test_the_suggestion_is_in_the_one_line_error():
    with pytest.raises(UserError) as err:
        overrides.parse(["epochs=3", "lrate=0.1"], CONFIG)
    assert str(err.value) == "unknown config key 'lrate' in override — did you mean lr?"


def test_run_with_a_typo_suggests_the_key_and_writes_nothing(project):
    out = project.cli("run", "t", "lrate=0.1")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == ["runtag: unknown config key 'lrate' in override — did you mean lr?"]
    assert not (project.root / "__result__").exists() and not (project.root / "__statistic__").exists()
    assert project.git("tag") == "" and project.git("status", "--porcelain") == ""


@pytest.mark.parametrize("change, expected", [
    ({"checkpoint_steps": 2.5}, "invalid config value checkpoint_steps=2.5 — use a whole number"),
    ({"checkpoint_steps": -1}, "invalid config value checkpoint_steps=-1 — use a number >= 0"),
    ({"checkpoint_copy_mb": -1}, "invalid config value checkpoint_copy_mb=-1 — use a number >= 0"),
    ({"epochs": float("inf")}, "invalid config value epochs=inf — use a whole number"),
])
def test_checkpoint_counts_are_checked_before_a_run(change, expected):
    from utils import settings
    with pytest.raises(UserError) as err:
        settings.check({**CONFIG, **change})
    assert str(err.value) == expected
