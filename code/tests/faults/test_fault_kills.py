"""Runs SIGKILLed at random moments (start-up, training, checkpoint writes): every file they
leave parses, and `con` takes each to the metrics of the same run never interrupted."""
import json
import random
import time
from collections import Counter

import pytest
import torch

from conftest import assert_one_line_mistake, children, gone, learned, make_project, record_at, wait_for
from faultlib import kill_all, untouched

KILLS = 20
RUN = ["epochs=8", "checkpoint_interval=0"]  # a 1.8 MB checkpoint every epoch: writes to land in


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One project, and the metrics and wall time of the run never interrupted."""
    project = make_project(tmp_path_factory.mktemp("kills") / "project")
    start = time.monotonic()
    project.cli("run", "-f", "straight", *RUN, check=True)
    record = project.record("straight", 0)
    training = record["duration_s"]
    return project, learned(record), (time.monotonic() - start - training, training / record["epochs"])


def descendants(pid):
    found = children(pid)
    return found + [d for child in found for d in descendants(child)]


def every_file_parses(run_dir):
    """statistic.json is JSON; every checkpoint a link names, and every epoch file, loads."""
    json.loads((run_dir / "statistic.json").read_text())
    for path in (run_dir / "checkpoint").glob("epoch_*.pth"):
        torch.load(path, weights_only=True)  # a dangling last/best link raises here too


@pytest.mark.slow
def test_runs_killed_at_random_moments_continue_to_identical_metrics(reference):
    project, straight, (start_up, epoch_s) = reference
    moments = random.Random(20261125)  # fixed: the same moments on every machine's run
    seen = Counter()
    for i in range(KILLS):
        tag = f"kill{i}"
        with untouched(project):
            run = project.start("run", "-f", tag, *RUN)
            phase = moments.choice(["start-up", 1, 2, 3, 4, 5])  # or in the epoch after that one
            if phase == "start-up":
                time.sleep(moments.uniform(0.0, start_up))
            else:
                record_at(project, tag, epoch=phase)
                time.sleep(moments.uniform(0.0, epoch_s))
            tree = descendants(run.pid)
            kill_all(tree[::-1] + [run.pid])  # the trainer first: no launcher left to tell it anything
            run.communicate()
            wait_for(lambda: all(gone(pid) for pid in tree), what=f"{tag} to die")
            seen[outcome(project, tag, straight)] += 1
    print(f"\n{KILLS} runs SIGKILLed: {dict(seen)}")
    assert sum(seen.values()) == KILLS


def outcome(project, tag, straight):
    """What the kill hit, after checking the files and continuing the run as far as it can go."""
    run_dir = project.run_dir(tag, 0)
    if not (run_dir / "statistic.json").exists():
        assert_one_line_mistake(project.cli("con", tag))
        return "before its record"
    every_file_parses(run_dir)
    if project.record(tag, 0)["status"] == "finished":
        return "after it finished"
    writing = any((run_dir / "checkpoint").glob(".*.tmp"))  # a killed checkpoint write left its temporary
    out = project.cli("con", tag)
    if out.returncode == 2 and "no checkpoint" in out.stderr:
        assert_one_line_mistake(out)
        return "before its first checkpoint"
    assert out.returncode == 0, out.stderr
    assert learned(project.record(tag, 0)) == straight
    return "during a checkpoint write" if writing else "while training"
