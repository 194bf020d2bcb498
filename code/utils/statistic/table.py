"""table: one row per run of a list and the title's columns, in `__statistic__/table/<list>.csv`.

`--format md|latex` also writes `<list>.md|.tex`; `--group` folds the runs of each tag and
configuration (its overrides: runs that differ only in their seed) into one row (count, mean and
sample std of each metric) and writes `<list>.group.*` instead; `--group tag` folds every run of
a tag, whatever its overrides. A grouped row's `run` is the tag, then the group's overrides as
`key=value` (sorted by key; none: the tag alone).
The CSV holds full-precision numbers; the terminal, Markdown and LaTeX show 4 significant digits.
In a terminal the table is printed as far as it fits (`--all`: every row); to a pipe or a file, whole.

A plain table (CSV or Markdown, no --group, no --sort) streams: a record is read, its row written,
and only the row's cell types are kept (output.py); pandas is imported for the rest (frame.py).
"""
import sys
from itertools import islice

from utils import atomic, paths
from utils.errors import UserError
from utils.statistic import output, record, rows, survey, title

FORMATS = ("csv", "md", "latex")
GROUPS = ("config", "tag")  # what --group folds on; the first is the default
SUFFIX = {"md": ".md", "latex": ".tex"}
KEEP = 10_000  # records a first table (no title yet) keeps from reading them for the title


def add_table(p):
    p.add_argument("list", nargs="?", default="record", metavar="LIST", help="the experiment list (default: record)")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="csv",
                   help="also write the table as Markdown (.md) or LaTeX (.tex), ready to paste")
    p.add_argument("--sort", metavar="KEY", help="sort by this column, ascending; --sort=-KEY for descending")
    p.add_argument("--group", nargs="?", const=GROUPS[0], choices=GROUPS, metavar="BY",
                   help="one row per tag and configuration (the runs' overrides; seeds vary inside "
                        "a row): number of runs, mean ± std of each metric. --group tag: one row "
                        "per tag, whatever the overrides. Put LIST before --group")
    p.add_argument("--vs", metavar="GROUP",
                   help="with --group: each other group's difference of means to GROUP (its row's run, or "
                        "a tag that is one group), its 95%% Welch interval and p-value; * where it excludes 0")
    p.add_argument("--notes", action="store_true", help="a last column `note`: each run's newest note (see note)")
    p.add_argument("--all", action="store_true", dest="every",
                   help="print every row in a terminal too (else the rows that fit, and where the rest is)")


def table(args):
    write(args.list, args.fmt, args.sort, args.group, every=getattr(args, "every", False),
          vs=getattr(args, "vs", None), notes=getattr(args, "notes", False))


def build(list_name, fmt="csv", sort=None, group=False, vs=None, notes=False):
    """Write the table files of a list (the title first, if it has none), print the table
    aligned, and return it as a DataFrame (numbers, not text)."""
    return write(list_name, fmt, sort, group, frame=True, vs=vs, notes=notes)


def write(list_name, fmt="csv", sort=None, group=False, every=False, frame=False, vs=None, notes=False):
    """Write the table files of a list (the title first, if it has none) and print it; with
    `frame`, return it as a DataFrame."""
    if fmt not in FORMATS:
        raise UserError(f"unknown table format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    group = grouping(group, vs)
    reader = read(list_name, group, notes=notes)
    if sort and not group:  # before anything is written; a grouped table's columns are known later
        from utils.statistic.frame import sort_key
        sort_key(sort, reader.header)
    stem = paths.statistic() / "table" / (list_name + (".group" if group else ""))
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = [stem.with_name(stem.name + ".csv")]  # not with_suffix: "record.group" has one
    if fmt != "csv":
        written.append(stem.with_name(stem.name + SUFFIX[fmt]))
    rest = f"{relative(written[0])} (all of them here: table {list_name} --all)"
    df = None
    if group or sort or fmt == "latex" or frame:
        df = pandas(list_name, reader, fmt, sort, written, (every, rest), vs)
    else:
        streamed(list_name, reader, written, (every, rest))
    print("runtag: wrote " + ", ".join(map(relative, written)), file=sys.stderr)
    return df


def read(list_name, group, write_title=True, notes=False):
    """The list's rows to read (rows.Reader); a list without a title gets one first (written,
    or with `write_title` False only computed), from one reading of its records."""
    names, kept, bad = record.read(list_name), None, ()
    if not title.path(list_name).exists():
        found, kept, bad = survey.of_list(names, KEEP)
        if write_title:
            title.write(list_name, found)
        else:
            return rows.Reader(names, *title.columns(list_name, found), dict(kept), bad, group, notes)
    return rows.Reader(names, *title.columns(list_name), dict(kept or ()), bad, group, notes)


def streamed(list_name, reader, written, shown):
    written_csv = output.Table(written[0], reader)
    said(list_name, reader)
    if len(written) > 1:
        output.markdown(written[1], reader.header, written_csv.right, written_csv.shown())
    output.show(reader.header, written_csv.right, written_csv.shown, reader.count, *shown)


def pandas(list_name, reader, fmt, sort, written, shown, vs=None):
    from utils.statistic import frame
    df, headers, cells, right = framed(list_name, reader, sort, vs)
    atomic.write_text(written[0], df.to_csv(index=False))
    if fmt == "md":
        output.markdown(written[1], headers, right, zip(*cells))
    elif fmt == "latex":
        atomic.write_text(written[1], frame.latex(headers, cells, right))
    output.show(headers, right, lambda limit: islice(zip(*cells), limit), len(df), *shown)
    return df


def framed(list_name, reader, sort=None, vs=None):
    """(DataFrame, shown headers, shown columns, which align right) of the rows `reader` reads;
    `vs`: the baseline group of a grouped table's differences."""
    from utils.statistic import frame
    data = list(reader)
    said(list_name, reader)
    df, metrics = frame.frame(reader, data, reader.statuses(), reader.hparams, reader.metrics, vs)
    df = frame.sorted_by(df, sort)
    headers, cells = frame.display(df, metrics if reader.group else [], vs)
    return df, headers, cells, frame.numeric(df, headers)


def said(list_name, reader):
    """What is said after the rows: the runs skipped, the title's keys that no run has."""
    reader.warn_skipped()
    title.warn_unknown(list_name, (reader.hparams, reader.metrics), reader.present())


def load(list_name="record", group=False, vs=None, notes=False):
    """The table of a list as a DataFrame, as `table` builds it, without writing anything."""
    return framed(list_name, read(list_name, grouping(group, vs), write_title=False, notes=notes), vs=vs)[0]


def grouping(group, vs=None):
    """None (a row per run), "config" or "tag", from what build/load accept: False, True
    (the default grouping, "config") or a name in GROUPS. `vs` compares groups: it needs one."""
    if vs is not None and not group:
        raise UserError(f"--vs {vs} compares groups, and the table is not grouped",
                        "add --group (table LIST --group --vs GROUP; in Python group=True)")
    if group is True:
        return GROUPS[0]
    if not group:
        return None
    if group not in GROUPS:
        raise UserError(f"unknown grouping {group!r}", f"use one of {', '.join(GROUPS)}")
    return group


def relative(path):
    return str(path.relative_to(paths.root()))
