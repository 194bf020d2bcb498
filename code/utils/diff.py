"""diff (shell: expdiff, since `diff` would shadow diff(1)): what differs between two runs.

Their records side by side (overrides, the hyperparameters that differ, metrics), then
`git diff --stat` between their commits. Reads only; a bare tag means its newest run.
"""
import json

import git

from utils import paths, runs

ABSENT = "-"
WIDTH = 40  # longest value shown; longer ones are cut


def add_diff(p):
    p.add_argument("a", metavar="TAG[/ID]", help="a run (a bare tag or a quoted glob of one tag: its newest run)")
    p.add_argument("b", metavar="TAG[/ID]", help="the run to compare it with")


def diff(args):
    (run_a, a), (run_b, b) = runs.one(args.a), runs.one(args.b)
    print(side_by_side(str(run_a), a, str(run_b), b))
    print()
    print(code_changes(a.get("commit"), b.get("commit")))


def side_by_side(name_a, a, name_b, b):
    """Rows `key  value-a  value-b`, grouped in sections; `*` marks a row that differs."""
    rows = [("", name_a, name_b, False), heading("record")]
    for key in ("status", "commit", "seed", "fixed_seed", "epoch", "command", "parent"):
        rows.append(row(key, a, b))
    rows.append(heading("overrides"))
    rows += [row(key, a.get("overrides") or {}, b.get("overrides") or {}) for key in keys(a, b, "overrides")]
    hp_a, hp_b = a.get("hparams") or {}, b.get("hparams") or {}
    differing = [row(key, hp_a, hp_b) for key in keys(a, b, "hparams")]
    equal = sum(1 for r in differing if not r[3])
    rows.append(heading(f"hyperparameters that differ ({equal} equal, not shown)"))
    rows += [r for r in differing if r[3]]
    rows.append(heading("metrics"))
    rows += [row(key, a.get("metrics") or {}, b.get("metrics") or {}) for key in keys(a, b, "metrics")]
    return layout(rows)


def heading(text):
    return (text, "", "", None)


def keys(a, b, section):
    return list(dict.fromkeys([*(a.get(section) or {}), *(b.get(section) or {})]))


def row(key, a, b):
    """(indented key, shown a, shown b, differs)."""
    missing = object()
    va, vb = a.get(key, missing), b.get(key, missing)
    differs = va is missing or vb is missing or type(va) is not type(vb) or va != vb
    return (f"  {key}", shown(va, missing), shown(vb, missing), differs)


def shown(value, missing):
    if value is missing:
        return ABSENT
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, str):
        text = value[:10] if len(value) == 40 and all(c in "0123456789abcdef" for c in value) else value  # a sha
    else:
        text = json.dumps(value)
    return text if len(text) <= WIDTH else text[:WIDTH - 3] + "..."


def layout(rows):
    key_w = max(len(r[0]) for r in rows if r[3] is not None)
    a_w = max(len(r[1]) for r in rows)
    lines = []
    for key, va, vb, differs in rows:
        if differs is None:
            lines.append(key)
        else:
            lines.append(f"{'*' if differs else ' '} {key:<{key_w}}  {va:<{a_w}}  {vb}".rstrip())
    return "\n".join(lines)


def code_changes(a, b):
    """`git diff --stat a b`, or why there is none."""
    if not a or not b:
        return "code: a record has no commit to compare"
    if a == b:
        return f"code: same commit {a[:10]}"
    try:
        stat = git.Repo(paths.root()).git.diff("--stat", a, b)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError) as err:
        return f"code: git cannot compare {a[:10]} and {b[:10]}: {str(err).strip().splitlines()[-1]}"
    return f"code: git diff --stat {a[:10]} {b[:10]}\n{stat or ' (no changes in tracked files)'}"
