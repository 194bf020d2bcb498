"""title: the columns of a list's table, in `__statistic__/title/<list>.json`.

The file is JSON with comments, one key a line, so that a column is hidden by commenting its
line out:

    {
      "hparams": [
        "lr",
        // "epochs",  // same in every run: 20
        # "optimizer",
      ],
      "metrics": [
        "best/val_acc",
      ]
    }

What follows `//` or `#` outside a string is a comment, and a comma before `]` or `}` is
allowed; strip those and it is plain JSON (`parse`). Hyperparameters equal in every run of
the list are written commented out with a `same in every run` note, and so are the machine's
metrics (`last/system_*`: CPU, memory, GPU), with their own note. Running `title` again
adds the keys that are new, rewrites only its own `same in every run` lines (a key that now
differs is shown), and keeps every other line as it is, your edits and comments included.
A shown key that no run of the list has (a typo, most often) is named in a warning by `table`,
with the closest key there is (`warn_unknown`).
"""
import json
import re

from utils import atomic, paths
from utils.errors import UserError
from utils.statistic import record, survey

SECTIONS = ("hparams", "metrics")
STRING = r'"(?:\\.|[^"\\])*"'
COMMENT = re.compile(rf'{STRING}|//[^\n]*|#[^\n]*')  # matching strings too keeps a "#" in a key whole
TRAILING_COMMA = re.compile(rf'{STRING}|,(?=\s*[\]}}])')
KEY_LINE = re.compile(rf'\s*(?:(?://|#)\s*)?({STRING})\s*,?')
SAME_LINE = re.compile(rf'\s*// {STRING},\s*// same in every run: .*')
SECTION_START = re.compile(r'\s*"(\w+)"\s*:\s*\[\s*$')
HEADER = """\
// Columns of the table of experiment list `{name}`: one key a line, in this order.
// JSON with comments (after // or #) and trailing commas. Comment a line out to hide its column.
// Hyperparameters equal in every run come commented out. `title {name}` again adds new keys,
// rewrites only its own "same in every run" lines, and keeps every other line as you left it.
"""


def add_title(p):
    p.add_argument("list", nargs="?", default="record", metavar="LIST", help="the experiment list (default: record)")


def title(args):
    where = write(args.list)
    hparams, metrics = columns(args.list)
    print(f"{where.relative_to(paths.root())}: {len(hparams) + len(metrics)} columns shown "
          f"({len(hparams)} hyperparameters, {len(metrics)} metrics); comment lines out to hide more")


def path(list_name):
    record.check_name(list_name)  # a name too long for a file is one line, not OSError
    return paths.statistic() / "title" / f"{list_name}.json"


def write(list_name, records=None):
    """(Re)write the title file of a list from its runs' records (or their Survey); returns its path."""
    if records is None:
        records = surveyed(list_name)
    target = path(list_name)
    old = record.read_text(target) if target.exists() else ""
    if old:
        parse(old, target)  # a damaged file is reported, not silently replaced
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(target, render(list_name, records, old))
    return target


def render(list_name, records, old=""):
    """The text of the title file: the old file's lines kept, new keys appended per section.
    `records`: the records, or their Survey."""
    kept = old_sections(old)
    found = records if isinstance(records, survey.Survey) else survey.Survey(records)
    hparams, metrics = list(found.hparams), list(found.metrics)
    same = {key: "same in every run: " + short(json.dumps(value)) for key, value in found.equal()}
    machine = {key: "the machine's, not the model's" for key in metrics if key.startswith("last/system_")}
    parts = []
    for section, keys in (("hparams", hparams), ("metrics", metrics)):
        lines = body(keys, same if section == "hparams" else machine, kept.get(section, []))
        parts.append(f'  "{section}": [\n' + "".join(f"{line}\n" for line in lines) + "  ]")
    return HEADER.format(name=list_name) + "{\n" + ",\n".join(parts) + "\n}\n"


def body(keys, same, old_lines):
    """A section's lines: every old line (its own `same` lines refreshed), then new keys
    (`same`: the notes of those that come commented out)."""
    out, seen = [], set()
    for line in old_lines:
        key = key_of(line)
        if key is not None and SAME_LINE.fullmatch(line):
            if key in keys:  # ours, untouched: say what is true now
                out.append(fresh(key, same))
                seen.add(key)
            continue
        out.append(line)
        seen.add(key)
    return out + [fresh(key, same) for key in keys if key not in seen]


def fresh(key, notes):
    """A key's line: shown, or commented out with the note why."""
    if key in notes:
        return f"    // {json.dumps(key)},  // {notes[key]}"
    return f"    {json.dumps(key)},"


def short(text):
    return text if len(text) <= 40 else text[:37] + "..."


def key_of(line):
    """The key a line names, commented out or not; None for other lines."""
    match = KEY_LINE.match(line)
    return json.loads(match.group(1)) if match else None


def old_sections(text):
    """{section: its lines between `[` and `]`} of an existing title file."""
    found, current = {}, None
    for line in text.splitlines():
        start = SECTION_START.match(line)
        if current is None and start:
            current = found.setdefault(start.group(1), [])
        elif current is not None and line.strip().startswith("]"):
            current = None
        elif current is not None:
            current.append(line)
    return found


def parse(text, where="title file"):
    """The title file as plain data: comments and trailing commas stripped, then JSON."""
    def strings_only(match):
        return match.group(0) if match.group(0).startswith('"') else ""

    plain = TRAILING_COMMA.sub(strings_only, COMMENT.sub(strings_only, text))
    try:
        data = json.loads(plain)
    except (ValueError, RecursionError) as err:  # RecursionError: thousands of nested brackets
        raise UserError(f"{where} is not valid JSON with comments: {err}",
                        "fix it, or delete it and run `title` to write it again")
    if not isinstance(data, dict) or not all(
            isinstance(data.get(s, []), list) and all(isinstance(k, str) for k in data.get(s, []))
            for s in SECTIONS):
        raise UserError(f"{where} must be an object of key lists {', '.join(SECTIONS)}",
                        "fix it, or delete it and run `title` to write it again")
    return data


def columns(list_name, records=None):
    """(hyperparameter keys, metric keys) shown in the table: the title file's uncommented
    lines; without a file, what `title` would write (computed, not written)."""
    target = path(list_name)
    if target.exists():
        data = parse(record.read_text(target), target)
    else:
        data = parse(render(list_name, surveyed(list_name) if records is None else records))
    return data.get("hparams", []), data.get("metrics", [])


def surveyed(list_name):
    """The Survey of a list's records; those that do not read are named on stderr."""
    found, _, bad = survey.of_list(record.read(list_name))
    for name in bad:
        record.warn(f"skipped {name}: its statistic.json is missing or damaged")
    return found


def warn_unknown(list_name, shown, present):
    """Warn on stderr, one line a key, of the shown (hparams, metrics) keys that no record has:
    a misspelled key would otherwise be an empty column, silently. Each is compared with the
    keys of its own section, the ones the runs actually have (`present`: those of each section;
    None when no record read)."""
    if present is None:  # nothing to compare with: every key would be "unknown"
        return
    present = dict(zip(SECTIONS, present))
    for section, other, keys in zip(SECTIONS, reversed(SECTIONS), shown):
        for key in dict.fromkeys(keys):
            if key not in present[section]:
                record.warn(f"title {list_name}.json: no column {key!r} in any run"
                            + hint(key, section, present[section], other, present[other]))


def hint(key, section, keys, other, other_keys):
    """What the key probably meant: a key of the other section, or the closest of its own."""
    if key in other_keys:
        return f" — it is one of the {other}: move it from {section!r} to {other!r}"
    import difflib  # imported when used: only a misspelled key needs it
    close = difflib.get_close_matches(key, keys, n=1)
    return f" — did you mean {close[0]!r}?" if close else ""
