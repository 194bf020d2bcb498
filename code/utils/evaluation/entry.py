"""An eval in a run's record: its metrics `eval/<name>/<split>/<metric>` in `metrics`, and what
produced them in `evals` (name, split, function, commit, checkpoint file, overrides, time, host,
duration). Nothing else of the record changes: its status and training metrics stay as trained."""
from utils.errors import UserError


def prefix(name, split):
    return f"eval/{name}/{split}/"


def same(entry, name, split):
    return isinstance(entry, dict) and entry.get("name") == name and entry.get("split", "test") == split


def taken(record, name, split):
    """Whether the record has an eval of this name and split already."""
    return any(same(e, name, split) for e in record.get("evals") or ()) \
        or any(key.startswith(prefix(name, split)) for key in record.get("metrics") or {})


def refuse_taken(run, record, name, split, force):
    if taken(record, name, split) and not force:
        raise UserError(f"{run} has an eval {name!r} of {split} already",
                        "give it another --name, or --force to replace it")


def add(record, metrics, provenance):
    """The metrics and their provenance into the record, replacing an eval of the same name and split."""
    name, split = provenance["name"], provenance["split"]
    start = prefix(name, split)
    kept = {key: value for key, value in record["metrics"].items() if not key.startswith(start)}
    record["metrics"] = {**kept, **{start + key: value for key, value in metrics.items()}}
    record["evals"] = [e for e in record.get("evals") or [] if not same(e, name, split)] + [provenance]
