"""Races: eight `run`s of one tag at once, two shells appending to one list, `table` and
`expels` while runs rewrite their records. Every id once, every line once, every read whole."""
import json
import subprocess

import pytest

from conftest import learned
from faultlib import untouched


@pytest.mark.slow
def test_eight_runs_of_one_tag_get_eight_ids_and_table_reads_them_while_they_write(project):
    with untouched(project):
        runs = [project.start("run", "-f", "eight", "epochs=3", "channels=4", OMP_NUM_THREADS="1")
                for _ in range(8)]
        tables = 0
        while any(run.poll() is None for run in runs):
            if (project.root / "__result__/eight").exists():
                out = project.cli("record", "-l", "live", "eight")
                listed = project.cli("expels", "eight")
                table = project.cli("table", "live")
                assert out.returncode == listed.returncode == table.returncode == 0, out.stderr + table.stderr
                assert "Traceback" not in out.stderr + listed.stderr + table.stderr
                tables += 1
        assert [run.wait() for run in runs] == [0] * 8
    assert tables >= 1
    assert sorted(p.name for p in (project.root / "__result__/eight").iterdir()) == [str(i) for i in range(8)]
    assert {project.record("eight", i)["status"] for i in range(8)} == {"finished"}
    # one experiment, eight times: the same seed and commit give the same metrics
    assert len({str(learned(project.record("eight", i))) for i in range(8)}) == 1


def test_two_shells_recording_at_once_list_each_run_once(project):
    for i in range(4):
        run = project.run_dir("r", i)
        run.mkdir(parents=True)
        record = {"tag": "r", "id": i, "status": "finished", "commit": "0" * 40, "seed": 1,  # what a record needs
                  "overrides": {}, "hparams": {}, "metrics": {}}
        (run / "statistic.json").write_text(json.dumps(record))
    loop = "for i in $(seq 20); do record -l both r/0 r/1 r/2 r/3 >/dev/null || exit 1; done"
    shells = [subprocess.Popen(["bash", "-c", f". code/source.sh\n{loop}"], cwd=project.root, env=project.env())
              for _ in range(2)]
    assert [s.wait() for s in shells] == [0, 0]
    lines = (project.root / "__statistic__/exper-list/both.txt").read_text().split()
    assert sorted(lines) == ["r/0", "r/1", "r/2", "r/3"]
