"""The Slurm jobs of a tag as submit.py left them, read: __statistic__/slurm/<tag>/submitted.json
(each job and what it runs), <job>.name (the run it started) and its logs' names.

Apart from submit.py so that `expels` reads them without importing what submitting needs
(submit.py writes these files and re-exports these names).
"""
from utils import paths, runs, slurm


def folder(tag):
    return paths.statistic() / "slurm" / tag


def name_file(tag, job):
    return folder(tag) / f"{job}.name"


def log(tag, job, suffix):
    return folder(tag) / f"{job}_0_log{suffix}"


def submitted(tag):
    """[{"job", "argv", "overrides", "submitted"}] of the tag, oldest first; [] if none."""
    found = runs.parsed(folder(tag) / "submitted.json")
    return found if isinstance(found, list) else []


def queued(tag):
    """The tag's jobs that Slurm still holds, pending or running: {job id: entry}."""
    entries = submitted(tag)
    live = slurm.states(e["job"] for e in entries) or {}
    return {e["job"]: e for e in entries if live.get(e["job"]) in slurm.WAITING | slurm.RUNNING}


def started(tag, job):
    """The run that job started, `tag/id`, or None before it has said so."""
    try:
        return name_file(tag, job).read_text().strip() or None
    except OSError:
        return None
