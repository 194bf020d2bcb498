"""The suite itself: on a machine without an optional component (zsh, Ray) its tests skip and
say why; under CI, which installs them all, the same test fails instead of skipping."""
import subprocess
import sys
from pathlib import Path

NEEDS = """from conftest import need_module, need_program

def test_shell():
    need_program("no-such-shell-here")

def test_engine():
    need_module("no_such_engine_here")
"""


def pytest_in(folder, ci):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parent), **({"CI": "true"} if ci else {})}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(folder)],
                          cwd=folder, capture_output=True, text=True, env=env)


def test_a_missing_component_skips_with_its_reason_and_fails_under_ci(tmp_path):
    (tmp_path / "test_needs.py").write_text(NEEDS)
    here = pytest_in(tmp_path, ci=False)
    assert here.returncode == 0 and "2 skipped" in here.stdout, here.stdout
    assert "the program no-such-shell-here is not installed here" in here.stdout
    assert "the Python package no_such_engine_here" in here.stdout
    ci = pytest_in(tmp_path, ci=True)
    assert ci.returncode == 1 and "2 failed" in ci.stdout, ci.stdout
    assert "is missing, and CI runs every test" in ci.stdout
