"""expls, expels: what has been run, one line each, in aligned plain-text columns.

Both read only the runs' statistic.json (and, for expls, the tags' commits from git), so
they work while runs are going, and on a copy of __result__ without the repository. expls reads
a record only when it changed since the last expls (utils/summary.py keeps what it read).
Imports stay few: every listing, and tab completion, pays for them before it reads anything.
"""
import math

from utils import jobs, notes, paths, runs, slurm, spawn, summary


def add_expls(p):
    pass


def expls(args):
    """One line per tag: its runs (every run folder, a damaged record's too: it is named on
    stderr), how many finished, the commit, its date and subject."""
    commits = tagged_commits()
    rows = [("TAG", "RUNS", "FINISHED", "COMMIT", "DATE", "SUBJECT")]
    for tag in runs.tags():
        found = summary.read(tag, runs.of(tag))  # (status, commit) of each record that reads
        read = [r for _, r in found if r]
        sha, date, subject = commits.get(tag) or (next((c for _, c in read if c), None), "", "")
        finished = sum(status == "finished" for status, _ in read)
        rows.append((tag, len(found), finished, (sha or "-")[:10], date or "-", subject or "-"))
    print(columns(rows))


def add_expels(p):
    p.add_argument("specs", nargs="+", metavar="TAG[/ID]",
                   help="a tag that has runs (see expls), a run, or a quoted glob of tags: 'lr*'")


def expels(args):
    """One line per run: status, epochs (or steps) done, where `con` would continue, best metric,
    duration, overrides. A run in a Slurm job shows its job's state; a job not started yet, a line."""
    from utils import checkpoints  # here: it imports atomic (tempfile), which expls needs not
    rows = [("RUN", "STATUS", "PROGRESS", "CHECKPOINT", "BEST", "DURATION", "OVERRIDES")]
    submitted = [s for s in args.specs if not runs.of(s) and jobs.submitted(s)]  # jobs, no run started yet
    specs = [s for s in args.specs if s not in submitted]
    found = runs.records(runs.resolve(specs)) if specs else []
    queue = slurm.queue_of([record for _, record in found])
    for run, record in found:
        if record is None:
            why = runs.damage(run) or "is missing"
            rows.append((run, "damaged", "-", checkpoints.newest(run.checkpoints) or "-", "-", "-", f"{runs.RECORD} {why}"))
            continue
        rows.append((run, runs.status(record, queue), progress(record),
                     checkpoints.newest(run.checkpoints) or "-", best(record), duration(record.get("duration_s") or 0),
                     overrides(record.get("overrides") or {}) + notes.mark(record)))  # `  (2 notes)`
    for tag in dict.fromkeys([run.tag for run, _ in found] + submitted):
        rows += waiting(tag)
    print(columns(rows))


def waiting(tag):
    """A row per Slurm job of the tag that Slurm holds and that has not started its run yet."""
    rows = []
    for job, entry in jobs.queued(tag).items():
        if not jobs.started(tag, job):
            rows.append((f"{tag}/-", "pending", "-", "-", "-", "-", f"{overrides(entry.get('overrides') or {})}  (job {job})"))
    return rows


def list_names():
    return sorted(p.stem for p in paths.lists().glob("*.txt"))


def tag_words(runs_too=False, unfinished=False):
    """Tags, and with `runs_too` their runs `tag/id`, one a line, for tab completion; `unfinished`:
    only the runs that are not finished (what `con` takes), and their tags."""
    words = []
    for tag in runs.tags():
        found = runs.of(tag)
        if unfinished:
            found = [run for run, record in runs.records(found, quiet=True) if (record or {}).get("status") != "finished"]
            words += [tag, *map(str, found)] if found else []
        else:
            words += [tag, *(map(str, found) if runs_too else [])]
    return words


def tagged_commits():
    """{tag: (sha, date, subject)} of every tag in one git call; {} outside a repository."""
    fmt = "%00".join(["%(refname:short)"] + [f"%(if)%(*objectname)%(then)%(*{f})%(else)%({f})%(end)"
                                              for f in ("objectname", "committerdate:format:%Y-%m-%d %H:%M",
                                                        "subject")])
    out = spawn.output(["git", "-C", str(paths.root()), "for-each-ref", f"--format={fmt}", "refs/tags"])
    commits = {}
    for line in (out or "").splitlines():
        tag, sha, date, subject = line.split("\0")
        commits[tag] = (sha, date, subject)
    return commits


def progress(record):
    """In the run's clock: `12/20` epochs, or `step 1200/5000` when it trains for max_steps."""
    if record.get("max_steps"):
        return f"step {record.get('step') or 0}/{record['max_steps']}"
    return f"{record.get('epoch', 0)}/{record.get('epochs') or '?'}"


def best(record):
    """The deciding metric at the best evaluation, e.g. `val/acc 0.9731 @12` (its epoch), or
    `@step 1200` in a run that trains for max_steps."""
    name = (record.get("hparams") or {}).get("best_metric", "")
    if not isinstance(name, str):  # hparams are the user's config: any JSON value
        return "-"
    value = record.get("metrics", {}).get(f"best/{name.replace('/', '_')}")
    if value is None:
        return "-"
    shown = f"{value:.4f}" if isinstance(value, (int, float)) else value  # "nan": a run that diverged
    at = (f"step {record['metrics'].get('best/step', '?')}" if record.get("max_steps")
          else record["metrics"].get("best/epoch", "?"))
    return f"{name} {shown} @{at}"


def duration(seconds):
    if not math.isfinite(seconds):  # json reads Infinity and NaN too
        return "-"
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
