"""space: a sweep file's `search:` document and the space it searches.

    search:                       # first document: how to search (with `default:` beside it, or not)
      method: tpe                 # grid | random | tpe
      trials: 20                  # the budget: finished and pruned trials count
      metric: best/val_acc        # a metric of the run's record
      goal: max                   # max | min
      prune: asha                 # none | median | asha
      grace: 2                    # evaluations every trial runs before it may be pruned
      eta: 3                      # asha: 1/eta of the trials go on at each rung
    default:
      epochs: 10
    ---
    lr: loguniform(1e-4, 1e-1)    # the space: one document of distributions and lists
    channels: int(16, 128, step=16)
    optimizer: [adam, sgd]

Distributions: uniform(low, high), loguniform(low, high), int(low, high[, step=S][, log=true]);
a list is a choice. Each is checked as an override is, and a mistake names the file, the
document and the key. Optuna's distributions are made from these in utils/sweep/search.py.
"""
import ast
import itertools
import math
from dataclasses import dataclass, field

from utils import overrides
from utils.errors import UserError, shown

METHODS, GOALS, PRUNERS = ("grid", "random", "tpe"), ("max", "min"), ("none", "median", "asha")
DEFAULTS = {"method": "random", "goal": "max", "prune": "none", "grace": 1, "eta": 3}
FORMS = "uniform(0.1, 0.9), loguniform(1e-4, 1e-1), int(16, 128, step=16) or a list [a, b]"


@dataclass
class Search:
    """A search: its settings, the overrides of every trial, and the space {key: Dimension}."""
    method: str
    trials: int
    metric: str
    goal: str
    prune: str
    grace: int
    eta: int
    default: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)

    def grid(self):
        """The space as lists (method grid): {key: values}."""
        return {key: dim.values for key, dim in self.space.items()}

    def size(self):
        return math.prod(len(v) for v in self.grid().values()) if self.method == "grid" else None


@dataclass
class Dimension:
    kind: str              # "choice" | "float" | "int"
    values: list = None    # choice
    low: float = None
    high: float = None
    step: int = None
    log: bool = False

    def __str__(self):
        if self.kind == "choice":
            return "[" + ", ".join(overrides.text(v) for v in self.values) + "]"
        if self.kind == "float":
            return f"{'loguniform' if self.log else 'uniform'}({self.low:g}, {self.high:g})"
        return f"int({self.low}, {self.high}{f', step={self.step}' if self.step != 1 else ''}{', log=true' if self.log else ''})"


def settings(mapping, where):
    """The `search:` mapping, checked and completed with the defaults."""
    if not isinstance(mapping, dict):
        raise UserError(f"{where}: search is a {type(mapping).__name__}, not a mapping",
                        "write `search:` then indented `method: random`, `trials: 20`, `metric: best/val_acc` lines")
    unknown = sorted(set(map(str, mapping)) - {"method", "trials", "metric", "goal", "prune", "grace", "eta"})
    if unknown:
        raise UserError(f"{where}: unknown search setting {unknown[0]!r}",
                        "use method, trials, metric, goal, prune, grace, eta")
    found = {**DEFAULTS, **mapping}
    for key, choices in (("method", METHODS), ("goal", GOALS), ("prune", PRUNERS)):
        if found[key] not in choices:
            raise UserError(f"{where}: unknown search {key} {shown(found[key])}", f"use one of {', '.join(choices)}")
    for key, least in (("trials", 1), ("grace", 1), ("eta", 2)):
        value = found.get(key)
        if key == "trials" and value is None and found["method"] == "grid":
            continue  # a grid's budget is its size
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= least):
            raise UserError(f"{where}: search {key} is {shown(value)}", f"give a whole number >= {least}")
    metric = found.get("metric")
    prefix, _, name = str(metric).partition("/")
    if not (isinstance(metric, str) and prefix in ("best", "last", "test") and name):
        raise UserError(f"{where}: search metric is {shown(metric)}",
                        "name a metric of the run's record, e.g. best/val_acc, test/acc or last/val_loss")
    return found


def dimension(key, value, config, where, checked):
    """One key of the space: a list (choice, each value `checked` as plan does) or a distribution."""
    if not isinstance(key, str):  # YAML's `0:` or `null:` key
        raise UserError(f"{where} has key {shown(key)}, not a name", "keys are names from code/config.py")
    if key not in config:
        overrides.check({key: value}, config, where=where)  # unknown key: names the closest one
    if isinstance(value, list):
        if not value:
            raise UserError(f"{where} key {key!r} has an empty list", "give at least one value")
        return Dimension("choice", values=[checked(key, v, config, where) for v in value])
    if not isinstance(value, str):
        raise UserError(f"{where} key {key!r} has {shown(value)}, not a list or a distribution", f"write e.g. {FORMS}")
    kind, low, high, step, log = call(key, value, where)
    default = config[key]
    if kind == "int":
        if not (isinstance(default, int) and not isinstance(default, bool)):
            raise UserError(f"{where} key {key!r}: int(...) for a value that is a {type(default).__name__}",
                            "use uniform(...) or loguniform(...) for a float, a list otherwise")
        if not all(isinstance(v, int) for v in (low, high, step)) or step < 1 or (high - low) % step:
            raise UserError(f"{where} key {key!r}: {value} needs whole numbers and a step that divides high - low",
                            "e.g. int(16, 128, step=16)")
    elif not isinstance(default, float):
        raise UserError(f"{where} key {key!r}: {value} for a value that is a {type(default).__name__}",
                        "use int(...) for a whole number, a list otherwise")
    if not low < high or (log and low <= 0):
        raise UserError(f"{where} key {key!r}: {value} is an empty range",
                        "give low < high" + (", both > 0 for a log scale" if log else ""))
    return Dimension("int" if kind == "int" else "float", low=low, high=high, step=step, log=log)


def call(key, text, where):
    """`loguniform(1e-4, 0.1)` as (kind, low, high, step, log); anything else is one line."""
    bad = UserError(f"{where} key {key!r} has {shown(text)}, not a distribution", f"write e.g. {FORMS}")
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise bad from None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in ("uniform", "loguniform", "int") and len(node.args) == 2):
        raise bad
    try:
        low, high = (number(arg) for arg in node.args)
        options = {kw.arg: number(kw.value) if kw.arg == "step" else flag(kw.value) for kw in node.keywords}
    except ValueError:
        raise bad from None
    if set(options) - ({"step", "log"} if node.func.id == "int" else set()):
        raise bad
    kind = node.func.id
    return ("int" if kind == "int" else "float", low, high, options.get("step", 1),
            kind == "loguniform" or bool(options.get("log")))


def number(node):
    value = ast.literal_eval(node)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(value)
    return value


def flag(node):
    if isinstance(node, ast.Name) and node.id in ("true", "false"):
        return node.id == "true"
    value = ast.literal_eval(node)
    if not isinstance(value, bool):
        raise ValueError(value)
    return value


def parse(found, documents, default, config, name, checked, check_config):
    """The Search of a file whose first document has `search:` (found, already read from it)."""
    where = f"{name} document 1"
    spaces = [(n, doc) for n, doc in documents if doc is not None]
    if len(spaces) != 1:
        raise UserError(f"{name} has {len(spaces)} documents after `search:`, not one space",
                        "put every key to search in one document after the first")
    n, doc = spaces[0]
    if not isinstance(doc, dict) or not doc:
        raise UserError(f"{name} document {n} is not a mapping of keys to search", f"write `key: {FORMS}` lines")
    space = {str(key): dimension(key, value, config, f"{name} document {n}", checked) for key, value in doc.items()}
    settings_ = settings(found, where)
    if settings_["method"] == "grid" and any(d.kind != "choice" for d in space.values()):
        raise UserError(f"{name}: method grid with a distribution", "give lists for a grid, or method random or tpe")
    search = Search(**{k: settings_.get(k) for k in ("method", "trials", "metric", "goal", "prune", "grace", "eta")},
                    default=default, space=space)
    search.trials = search.trials or search.size()
    for corner in corners(search):  # settings' checks at the space's edges, before any trial
        check_config(corner, config, f"{name} document {n}")
    return search


def corners(search):
    """The defaults with every key at its low end, then at its high end (choices: each value)."""
    ends = [[d.low, d.high] if d.kind != "choice" else d.values for d in search.space.values()]
    for pick in itertools.islice(zip(*[itertools.cycle(e) for e in ends]), max(len(e) for e in ends)):
        yield {**search.default, **dict(zip(search.space, pick))}
