"""A table's cells without pandas: which type pandas would give each column (so that a streamed
CSV is, byte for byte, what `DataFrame.to_csv` wrote), and the text a cell shows.

A column's type follows from the Python types of its values (and, for ints, their range), as
pandas infers it from rows of JSON values: only ints → int64 (uint64 past 2**63), ints or floats
with blanks → float64 (an int is then written as a float: `5.0`), only bools → bool, anything else
(text, lists, bools with blanks, all blank) → object, written as `str(value)`. Records of one
runtag share a few shapes (the types of a row's cells), so types are noted once per shape.
"""
from operator import itemgetter

NUMERIC = frozenset({"float64", "int64", "uint64"})  # aligned right, as pandas' numeric dtypes
INT64, UINT64 = 2**63, 2**64
CLASS = {type(None): "N", float: "F", int: "I", bool: "B", str: "S"}  # anything else: "O"


class Columns:
    """The types seen in each column of rows as they stream by (`shape`), and so their kinds."""

    def __init__(self, width):
        self.width = width
        self.shapes = {}  # tuple of the row's types -> its number
        self.order = []  # the shapes, by number
        self.ints = [set() for _ in range(width)]  # per column: the classes of ints out of int64's 0..2**63
        self.checks = []  # per shape: (the row's floats, the row's ints), as tuples (picker)

    def shape(self, row):
        """The number of the row's shape; NaN becomes None (a blank, as pandas writes it)."""
        types = tuple(map(type, row))
        number = self.shapes.get(types)
        if number is None:
            number = self.shapes[types] = len(self.order)
            self.order.append(types)
            self.checks.append((picker([j for j, t in enumerate(types) if t is float]),
                                picker([j for j, t in enumerate(types) if t is int])))
        floats, ints = self.checks[number]
        if floats:  # one sum per row: NaN (or inf - inf) only then looked for cell by cell
            total = sum(floats(row))
            if total != total:
                self.nan(row, types)
        if ints:
            values = ints(row)
            if min(values) < 0 or max(values) >= INT64:
                self.ranges(row, types)
        return number

    def nan(self, row, types):
        for j, kind in enumerate(types):
            if kind is float and row[j] != row[j]:
                row[j] = None

    def ranges(self, row, types):
        for j, kind in enumerate(types):
            value = row[j]
            if kind is int and not 0 <= value < INT64:
                self.ints[j].add("M" if -INT64 <= value < 0 else "U" if INT64 <= value < UINT64 else "O")

    def kinds(self):
        """Each column's pandas dtype name: float64, int64, uint64, bool or object."""
        seen = [set(self.ints[j]) for j in range(self.width)]
        for types in self.order:
            for j, kind in enumerate(types):
                seen[j].add(CLASS.get(kind, "O"))
        return [infer(classes) for classes in seen]


def picker(positions):
    """A function of a row: the tuple of its cells at these positions; None for none."""
    if not positions:
        return None
    get = itemgetter(*positions)
    return get if len(positions) > 1 else lambda row: (get(row),)


def infer(c):
    """pandas' dtype of a column of Python values of these classes: N None, F float, I int in
    0..2**63, M a negative int64, U an int in 2**63..2**64, B bool, S str, O anything else."""
    if c & {"S", "O"} or ("U" in c and "M" in c):
        return "object"
    if "B" in c:
        return "bool" if c == {"B"} else "object"
    if c <= {"N"}:
        return "object"  # all blank, or no rows
    if c & {"N", "F"}:
        return "float64"
    return "int64" if c <= {"I", "M"} else "uint64"


def floated(kinds, shape):
    """The columns where this shape has an int that pandas writes as a float."""
    return [j for j, kind in enumerate(shape) if kind is int and kinds[j] == "float64"]


def csv_cell(value):
    """An int of a float64 column as the CSV holds it."""
    return repr(float(value))


class Shown:
    """The shown text of CSV rows, given the Python types their cells were written from: only
    the cells of floats, and of ints in float64 columns, are formatted (`text`). In the columns
    `few` (the hyperparameters: a few values across the runs) each value is formatted once."""

    def __init__(self, kinds, order, few):
        self.columns = []  # per shape: (its few-valued columns to format, the others)
        for shape in order:
            numbers = [j for j, kind in enumerate(shape) if kind is float or (kind is int and kinds[j] == "float64")]
            self.columns.append(([j for j in numbers if j in few], [j for j in numbers if j not in few]))
        self.memo = {}  # CSV text -> shown text, of the few-valued columns

    def __call__(self, number, row):
        """The shown cells of a CSV row (changed in place) of shape `number`."""
        few, others = self.columns[number]
        memo = self.memo
        for j in few:
            if row[j]:
                row[j] = memo.get(row[j]) or self.once(row[j])
        for j in others:
            cell = row[j]
            if cell:  # text(float(cell)), its usual case inline: most cells are metrics
                value = float(cell)
                shown = f"{value:.4g}"
                row[j] = shown if "e" not in shown and value == value else text(value)
        return row

    def once(self, cell):
        if len(self.memo) > 4096:  # a hyperparameter set per run (a search's lr): bounded
            self.memo.clear()
        shown = self.memo[cell] = text(float(cell))
        return shown


def text(value):
    """A cell as shown: floats to 4 significant digits, missing values blank."""
    if isinstance(value, float):  # first: most cells are metrics
        if value != value:  # NaN
            return ""
        shown = f"{value:.4g}"
        return f"{value:.0f}" if "e" in shown and abs(value) >= 1 else shown  # 12346, not 1.235e+04
    return "" if value is None or value != value else str(value)


def right(kinds):
    """Which columns hold numbers, to align them right."""
    return [kind in NUMERIC for kind in kinds]
