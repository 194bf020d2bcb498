"""A full disk: the run ends `failed` with one line naming the cause, its record written, its
newest intact checkpoint untouched; once space is freed, `con` ends as an uninterrupted run."""
import os
import subprocess

import pytest

from conftest import learned, need, read_json
from faultlib import untouched

# ~1.8 MB a checkpoint: 4 MB hold the first two, and the disk is full in the third epoch's write.
RUN = ["epochs=6", "checkpoint_interval=0", "keep_checkpoints=0"]


@pytest.fixture
def small_disk(project):
    """__result__ on a 4 MB tmpfs the test mounts (root only; CI runs as root)."""
    results = project.root / "__result__"
    results.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(results)],
                             capture_output=True, text=True)
    need("permission to mount a tmpfs (root)", mounted.returncode == 0)
    yield results
    subprocess.run(["umount", "-l", str(results)], check=True)


@pytest.mark.slow
def test_a_full_disk_fails_the_run_in_one_line_and_con_finishes_it(project, small_disk):
    with untouched(project):
        out = project.cli("run", "-f", "full", *RUN)
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.startswith("runtag: full/0")]
    assert len(lines) == 1 and "no space left on device while writing" in lines[0], out.stderr
    assert "Traceback" not in out.stderr
    record = read_json(project.run_dir("full", 0) / "statistic.json")
    assert record["status"] == "failed" and "no space left on device" in record["error"]
    checkpoints = project.run_dir("full", 0) / "checkpoint"
    last = os.readlink(checkpoints / "epoch_last.pth")
    assert not list(checkpoints.glob(".*.tmp"))  # the failed write left nothing half-done
    assert "no space left on device" in (project.run_dir("full", 0) / "log").read_text()

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    with untouched(project):
        assert project.cli("con", "full").returncode == 0
        assert project.cli("rerun", "-f", "full").returncode == 0
    resumed, straight = project.record("full", 0), project.record("full", 1)
    assert resumed["status"] == straight["status"] == "finished"
    assert learned(resumed) == learned(straight)
    assert f"continuing after epoch {last[6:-4]}" in (project.run_dir("full", 0) / "log").read_text()
