"""Tab completion treats names as data: a tag or folder named `$(...)` or with backticks under a
shared __result__ is offered as it is, and nothing in it runs."""
import json

import pytest

HOSTILE = ["t$(touch${IFS}MK1)", "t`touch MK2`", "t;touch MK3", "t$(touch MK4)/0", "$HOME", "*"]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_fed_hostile_names_runs_nothing(project, shell):
    for name in HOSTILE:
        folder = project.root / "__result__" / name.split("/")[0] / "0"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "statistic.json").write_text(json.dumps({"tag": name.split("/")[0], "id": 0, "status": "failed"}))
    script = "".join(f'_runtag_complete {verb} "" {verb}; printf "%s\\n" "${{COMPREPLY[@]}}"\n'
                     for verb in ("con", "rerun", "expels"))
    out = project.sh(script, shell=shell)
    assert out.returncode == 0, out.stderr
    assert not [p.name for p in project.root.rglob("MK*")], "completion ran a command from a name"
    offered = set(out.stdout.splitlines())
    tags = {name.split("/")[0] for name in HOSTILE}
    assert tags <= offered and {f"{tag}/0" for tag in tags} <= offered  # as they are, not expanded
