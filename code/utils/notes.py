"""`note`: a timestamped line added to a run's record (`notes`), or the run's notes printed.

A note is one line: `{"time": ISO-8601 UTC, "text": ...}` appended to the record's `notes` list
through amend.amending (the run's lock held, a live run refused, the record rewritten atomically).
Text with a line break is refused, so that `note <run>` prints each note as exactly one line,
`<time>  <text>`, which `grep` and `cut` read unambiguously; empty text is refused too. A note
written by hand into the record that is not of that shape is printed as its JSON, never a traceback.
"""
import json
import sys

from utils import runs
from utils.errors import UserError


def add_note(p):
    p.add_argument("run", metavar="TAG[/ID]", help="the run (a tag: its newest run)")
    p.add_argument("text", nargs="?", help="the line to add (one line); none: print the run's notes")


def note(args):
    run, record = runs.one(args.run)  # a damaged or missing record: one line
    if args.text is None:
        for entry in of(record):
            print(line(entry))
        return 0
    text = checked(args.text)
    from utils import amend  # here: only adding a note needs the lock and the atomic write
    with amend.amending(run) as record:
        notes = record.get("notes")
        record["notes"] = [*(notes if isinstance(notes, list) else []), {"time": runs.now(), "text": text}]
    count = len(record["notes"])
    print(f"runtag: noted {run} ({count} note{'s' if count > 1 else ''})", file=sys.stderr)
    return 0


def checked(text):
    """The note's text, stripped; empty text or text of more than one line is refused."""
    if not text.strip():
        raise UserError("an empty note", 'give its text: note <run> "lr looks too high"')
    if len(text.splitlines()) > 1:  # \n, \r and the other line breaks str.splitlines knows
        raise UserError("a note is one line, and this text has a line break",
                        "write it on one line, or add several notes")
    return text.strip()


def of(record):
    """The record's notes, in the order they were added ([] when it has none)."""
    notes = record.get("notes")
    return notes if isinstance(notes, list) else []  # schema.FIELDS: any other type makes the record damaged


def well_formed(entry):
    return (type(entry) is dict and type(entry.get("time")) is str and type(entry.get("text")) is str
            and len(entry["text"].splitlines()) <= 1 and len(entry["time"].splitlines()) <= 1)


def line(entry):
    """A note as printed: `time  text`; one that is not a note runtag wrote, as its JSON on one line."""
    if well_formed(entry):
        return f"{entry['time']}  {entry['text']}"
    return "?  " + json.dumps(entry, ensure_ascii=False)


def newest(record):
    """The run's newest well-formed note (a dict with time and text), or None: `table --notes`."""
    found = [e for e in of(record) if well_formed(e)]
    # ISO-8601 UTC: text order is time order; of two in one second, the later added (reversed: max keeps the first)
    return max(reversed(found), key=lambda e: e["time"]) if found else None


def mark(record):
    """What `expels` adds after a run's overrides: `  (2 notes)`; nothing for a run without."""
    count = len(of(record))
    return f"  ({count} note{'s' if count > 1 else ''})" if count else ""
