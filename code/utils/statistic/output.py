"""A table written as its rows stream by, without pandas: the CSV (`csv.writer`, each row as
read), then, from the CSV and the types its cells were written from, the Markdown and the
aligned printout. Bytes as `DataFrame.to_csv` and the aligned text before them wrote them.

The rows go to a scratch file first, then into the CSV (atomic.writing): copied as they are, or,
where a column turned out float64 only at its end (an int column with a blank in row 90,000:
pandas writes its ints as floats) or Slurm runs' statuses came after their rows, with those
cells fixed.
"""
import csv
import io
import shutil
import sys
import tempfile
from array import array
from itertools import islice

from utils import atomic
from utils.statistic import cells
from utils.statistic.rows import FIXED


class Table:
    """The CSV at `path` of the rows `reader` yields; what the other outputs need to read it back."""

    def __init__(self, path, reader):
        self.path, self.reader = path, reader
        self.columns = cells.Columns(len(reader.header))
        self.rows = array("I")  # each row's shape number
        try:
            self.written(path, reader)
        except OSError as err:  # the scratch file has no name: say the file the user knows
            if err.filename is None:
                err.filename = str(path)
            raise
        self.right = cells.right(self.kinds)

    def written(self, path, reader):
        with tempfile.TemporaryFile(dir=path.parent) as scratch:  # the rows as read, until their types are known
            self.write(scratch, reader)
            self.kinds = self.columns.kinds()
            statuses = reader.statuses()
            scratch.seek(0)
            with atomic.writing(path) as out:
                if statuses or any(cells.floated(self.kinds, shape) for shape in self.columns.order):
                    read = io.TextIOWrapper(scratch, encoding="utf-8", newline="")
                    self.write(out, Fixed(csv.reader(read), self, statuses), note=False)
                    read.detach()
                else:
                    shutil.copyfileobj(scratch, out, 1 << 20)

    def write(self, binary, rows, note=True):
        """Rows into the staged file; `note`: their shapes, on the first write."""
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        writer, shape, noted = csv.writer(text, lineterminator="\n"), self.columns.shape, self.rows.append
        writer.writerow(rows.header)
        if note:
            for row in rows:
                noted(shape(row))
                writer.writerow(row)
        else:
            writer.writerows(rows)
        text.flush()
        text.detach()

    def shown(self, limit=None):
        """The rows as shown (4 significant digits), read back from the CSV."""
        few = range(len(FIXED), len(FIXED) + len(self.reader.hp))  # the hyperparameters' columns
        show = cells.Shown(self.kinds, self.columns.order, few)
        with open(self.path, newline="", encoding="utf-8") as f:
            read = csv.reader(f)
            next(read)
            for number, row in zip(islice(self.rows, limit), read):
                yield show(number, row)


class Fixed:
    """The rows of a CSV read back, ints of float64 columns as floats, statuses filled in."""

    def __init__(self, read, table, statuses):
        self.header, self.read, self.table, self.statuses = next(read), read, table, statuses

    def __iter__(self):
        kinds, order, statuses = self.table.kinds, self.table.columns.order, self.statuses
        floated = [cells.floated(kinds, shape) for shape in order]
        for i, (number, row) in enumerate(zip(self.table.rows, self.read)):
            for j in floated[number]:
                row[j] = cells.csv_cell(int(row[j]))
            if i in statuses:
                row[1] = statuses[i]
            yield row


def markdown(path, header, right, rows):
    """A Markdown table of shown rows, streamed into `path`."""
    with atomic.writing(path) as binary:
        out = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        out.write(line_md(header) + "\n")
        out.write("| " + " | ".join("---:" if r else "---" for r in right) + " |\n")
        for row in rows:
            out.write(line_md(row) + "\n")
        out.flush()
        out.detach()


def line_md(items):
    return "| " + " | ".join(s.replace("|", "\\|") for s in items) + " |"


def show(header, right, rows, count, every=False, rest=None):
    """Print the table aligned: every row when stdout is no terminal (a pipe, a file: scripts
    read all of it) or with `every`; in a terminal the rows that fit, then how many more there
    are and `rest` (where they are). `rows(limit)`: the shown rows, from the first, again."""
    limit = None
    if not every and sys.stdout.isatty():
        room = max(shutil.get_terminal_size().lines - 3, 1)  # the header, the line of the rest, the prompt
        limit = room if count > room else None
    widths = [len(h) for h in header]
    for row in rows(limit):
        widths = list(map(max, widths, map(len, row)))
    write, layout = sys.stdout.write, laid(widths, right)
    write(line(header, widths, right) + "\n")
    for row in rows(limit):
        write((layout.format(*row).rstrip() if len(row) == len(widths) else line(row, widths, right)) + "\n")
    if limit is not None:
        write(f"... {count - limit} more rows: {rest}\n")
    sys.stdout.flush()


def laid(widths, right):
    """line() as one format string: `{:>w}` is s.rjust(w), `{:<w}` s.ljust(w); a width 0 (every
    cell blank) is `{}`, as `{:<0}` would read the 0 as zero padding."""
    return "  ".join(f"{{:{'>' if r else '<'}{w}}}" if w else "{}" for w, r in zip(widths, right))


def line(items, widths, right):
    return "  ".join(s.rjust(w) if r else s.ljust(w) for s, w, r in zip(items, widths, right)).rstrip()
