"""The rows of a list's table, one record at a time: what the table shows of each (run, status,
the title's columns) and nothing else is kept, so 100,000 runs cost their rows, not their records.

A run in a Slurm job whose job's state may correct its status (runs.status) gets it at the end,
from one squeue call for the whole list, as before: `Reader.statuses()`.
"""
from utils import paths, runs, slurm
from utils.statistic import record

FIXED = ("run", "status")  # the first two columns; a title key of that name is the same column
NOTE = "note"  # the last column with `table --notes`: the run's newest note


def columns(hparams, metrics):
    """(the table's columns, its hyperparameter keys, its metric keys): a key listed twice, or
    in both sections, is one column, the first."""
    hp = [k for k in dict.fromkeys(hparams) if k not in FIXED]
    m = [k for k in dict.fromkeys(metrics) if k not in FIXED and k not in set(hp)]
    return [*FIXED, *hp, *m], hp, m


class Reader:
    """The rows of the runs `names` (a list's, in its order), read as iterated; `kept`: records
    already read (name -> record), `bad`: names known not to read (both from a Survey). Also
    gathers what the table says after its rows: the keys the runs have (`present`), the runs
    skipped, with `group` each row's group name, and with `notes` each row's newest note's time."""

    def __init__(self, names, hparams, metrics, kept=None, bad=(), group=None, notes=False):
        self.names, self.kept, self.bad = names, kept or {}, set(bad)
        self.hparams, self.metrics = hparams, metrics  # the title's, as listed
        self.header, self.hp, self.m = columns(hparams, metrics)
        self.group, self.groups = group, []
        self.notes, self.times = notes, []  # times: each row's newest note's, for a group's newest
        if notes:
            from utils.notes import newest  # imported when used: a plain table starts quicker
            self.header, self.newest = [*self.header, NOTE], newest
        # the keys the runs have, gathered only while a shown key is in none of them (title.warn_unknown)
        self.hp_present, self.m_present = set(), set()
        self.unseen = (set(hparams), set(metrics))
        self.skipped, self.deferred, self.count = [], [], 0

    def records(self):
        base, kept = str(paths.results()), self.kept
        for name in self.names:
            rec = kept.pop(name, None) if kept else None
            if rec is None and name not in self.bad:
                rec = runs.load(f"{base}/{name}/{runs.RECORD}", name)  # a damaged one is named once (paths.skipped)
            if rec is None:
                self.skipped.append(name)
            else:
                yield name, rec

    def __iter__(self):
        hk, mk, unseen = self.hp, self.m, self.unseen
        for name, rec in self.records():
            hp, m = rec.get("hparams") or {}, rec.get("metrics") or {}
            if unseen[0] or unseen[1]:
                self.note(hp, m)
            status = rec.get("status")
            if status in slurm.ASKED:
                status = self.status(rec)
            if self.group:
                self.groups.append(group_name(name, rec, self.group))
            self.count += 1
            row = [name, status, *map(hp.get, hk), *map(m.get, mk)]
            if self.notes:
                newest = self.newest(rec)
                self.times.append(newest and newest["time"])
                row.append(newest and newest["text"])
            yield row

    def note(self, hp, m):
        self.hp_present.update(hp)
        self.m_present.update(m)
        self.unseen[0].difference_update(hp)
        self.unseen[1].difference_update(m)

    def status(self, rec):
        """The status now, or None for a run whose Slurm job is asked at the end."""
        if rec.get("slurm_job_id"):
            self.deferred.append((self.count, {k: rec.get(k) for k in ("status", "slurm_job_id", "host", "tag", "id")}))
            return None
        return runs.status(rec)

    def statuses(self):
        """{row number: status} of the runs in Slurm jobs, from one squeue call."""
        if not self.deferred:
            return {}
        queue = slurm.queue_of(rec for _, rec in self.deferred)
        return {row: runs.status(rec, queue) for row, rec in self.deferred}

    def present(self):
        """(hyperparameter keys, metric keys) that the runs read have, as far as title.warn_unknown
        needs them (all, when a shown key is in no run); None when none read."""
        return (self.hp_present, self.m_present) if self.count else None

    def warn_skipped(self):
        for name in self.skipped:
            record.warn(f"skipped {name}: its {runs.RECORD} is missing or damaged")


def group_name(name, rec, by):
    """The group of a run, as its row's `run` shows it: the tag, and unless grouped by tag its
    overrides as `key=value`, sorted so that the order they were typed in does not split a
    group. A mean over different configurations is not a result; over seeds it is, so the
    record's seed is not part of it, nor is a `seed` override where a config.py has one."""
    tag = name.partition("/")[0]
    if by == "tag":
        return tag
    changes = {k: v for k, v in sorted((rec.get("overrides") or {}).items()) if k != "seed"}
    from utils.overrides import words  # imported when used (ast, difflib...): a plain table starts quicker
    return " ".join([tag, *words(changes)])
