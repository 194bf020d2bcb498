"""expls, expels: what has been run, one line each, in aligned plain-text columns.

Both read only the runs' statistic.json (and, for expls, the tags' commits from git), so
they work while runs are going, and on a copy of __result__ without the repository.
"""
import os
import subprocess

from utils import paths, runs


def add_expls(p):
    pass


def expls(args):
    """One line per tag: its runs, how many finished, the commit, its date and subject."""
    commits = tagged_commits()
    rows = [("TAG", "RUNS", "FINISHED", "COMMIT", "DATE", "SUBJECT")]
    for tag in runs.tags():
        records = [r for r in map(runs.read, runs.resolve(tag)) if r]
        sha, date, subject = commits.get(tag) or (first(records, "commit"), "", "")
        finished = sum(r.get("status") == "finished" for r in records)
        rows.append((tag, len(records), finished, (sha or "-")[:10], date or "-", subject or "-"))
    print(columns(rows))


def add_expels(p):
    p.add_argument("tag", help="a tag that has runs (see expls)")


def expels(args):
    """One line per run of a tag: status, epochs done, the epoch `con` would continue after,
    best metric, duration, overrides."""
    rows = [("RUN", "STATUS", "EPOCH", "CHECKPOINT", "BEST", "DURATION", "OVERRIDES")]
    for run_dir in runs.resolve(args.tag.rstrip("/")):
        record = runs.read(run_dir)
        if record is None:
            rows.append((f"{args.tag}/{run_dir.name}", "damaged", "-", checkpoint(run_dir), "-", "-",
                         "statistic.json missing or unreadable"))
            continue
        rows.append((f"{record['tag']}/{record['id']}", runs.shown_status(record),
                     f"{record.get('epoch', 0)}/{record.get('epochs') or '?'}", checkpoint(run_dir), best(record),
                     duration(record.get("duration_s") or 0), overrides(record.get("overrides") or {})))
    print(columns(rows))


def add_tag_names(p):
    p.add_argument("--runs", action="store_true", help="also every tag/id")
    p.add_argument("--unfinished", action="store_true", help="only runs that are not finished, and their tags")
    p.add_argument("--lists", action="store_true", help="the experiment lists instead")
    p.add_argument("--options", metavar="VERB", help="the options of a verb instead")


def tag_names(args):
    """Words for the shell's tab completion (source.sh): tags, runs, lists, or a verb's options."""
    if args.options:
        print("\n".join(options(args.options)))
    elif args.lists:
        print("\n".join(sorted(p.stem for p in (paths.statistic() / "exper-list").glob("*.txt"))))
    elif args.unfinished:  # what `con` can take
        for tag in runs.tags():
            left = [id for id in runs.ids(tag) if (runs.read(paths.run_dir(tag, id)) or {}).get("status") != "finished"]
            if left:
                print("\n".join([tag] + [f"{tag}/{id}" for id in left]))
    else:
        for tag in runs.tags():
            print(tag)
            if args.runs:
                print("\n".join(f"{tag}/{id}" for id in runs.ids(tag)))


def options(verb):
    """The option strings of a verb's parser (shell names like `con` or `expdiff` accepted)."""
    from utils import cli
    verb = {**cli.ALIASES, "expdiff": "diff"}.get(verb, verb)
    if verb not in cli.VERBS:
        return []
    module_name, function, _ = cli.VERBS[verb]
    try:
        import importlib
        parser = cli.Parser(prog=verb)
        getattr(importlib.import_module(module_name), f"add_{function}")(parser)
    except (ImportError, AttributeError):  # a verb another part has not built yet
        return []
    return [s for action in parser._actions for s in action.option_strings]


def tagged_commits():
    """{tag: (sha, date, subject)} of every tag in one git call; {} outside a repository."""
    fmt = "%00".join(["%(refname:short)"] + [f"%(if)%(*objectname)%(then)%(*{f})%(else)%({f})%(end)"
                                              for f in ("objectname", "committerdate:format:%Y-%m-%d %H:%M",
                                                        "subject")])
    out = subprocess.run(["git", "for-each-ref", f"--format={fmt}", "refs/tags"], cwd=paths.root(),
                         capture_output=True, text=True)
    commits = {}
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        tag, sha, date, subject = line.split("\0")
        commits[tag] = (sha, date, subject)
    return commits


def checkpoint(run_dir):
    """The epoch of checkpoint/epoch_last.pth (its link names it: epoch_<n>.pth), or `-`.
    A killed run has trained further than it can be continued from; this says how far back."""
    try:
        return os.readlink(run_dir / "checkpoint" / "epoch_last.pth").removeprefix("epoch_").removesuffix(".pth")
    except OSError:
        return "-"


def first(records, key):
    return next((r[key] for r in records if r.get(key)), None)


def best(record):
    """The deciding metric at the best epoch, e.g. `val/acc 0.9731 @12`."""
    name = (record.get("hparams") or {}).get("best_metric", "")
    value = record.get("metrics", {}).get(f"best/{name.replace('/', '_')}")
    if value is None:
        return "-"
    shown = f"{value:.4f}" if isinstance(value, (int, float)) else value  # "nan": a run that diverged
    return f"{name} {shown} @{record['metrics'].get('best/epoch', '?')}"


def duration(seconds):
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def overrides(changes):
    return " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in changes.items()) or "-"


def columns(rows):
    """Left-aligned columns two spaces apart; the last column is not padded."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in rows)
