"""plan: the sweep file, YAML documents whose lists multiply into the runs of a sweep.

    default:                # optional first document: overrides of every run
      epochs: 10
    ---
    lr: [0.1, 0.01]         # each further document: the cartesian product of its lists
    optimizer: [sgd, adam]
    ---
    lr: [0.001]
    optimizer: [adamw]

The sweep is the union of the documents' products in file order, each combination once. A
first document with `search:` makes it a search instead (utils/sweep/space.py).
Every key and value is checked as a command-line override is, and an error names the
file, the document (counted from 1) and the key.
"""
import itertools
from pathlib import Path

import yaml

from utils import overrides
from utils.sweep import space
from utils.errors import UserError, undecodable


def load(path, config):
    """The combinations of the sweep file at `path`, each a dict of overrides."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise UserError(f"cannot read sweep file {path}: {err.strerror}",
                        "give the path of a YAML file, e.g. code/sweeps/lr.yaml")
    except UnicodeDecodeError as err:
        raise undecodable(path, err) from None
    return parse(text, config, name=str(path))


def parse(text, config, name="sweep file"):
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        raise UserError(f"{name} is not valid YAML: {' '.join(str(err).split())}", "fix the file")
    if documents and isinstance(documents[0], dict) and "search" in documents[0]:
        return searched(documents, config, name)
    default, combinations, seen, first = {}, [], set(), True
    for n, doc in enumerate(documents, 1):
        where = f"{name} document {n}"
        if doc is None:  # an empty document, e.g. after a trailing `---`
            continue
        if not isinstance(doc, dict):
            raise UserError(f"{where} is a {type(doc).__name__}, not a mapping", "write one `key: [values]` a line")
        if "default" in doc:
            if not first or len(doc) > 1:
                raise UserError(f"{where} has `default:` besides other keys or after the first document",
                                "put `default:` alone in the first document, then `---`")
            default = defaults(doc["default"], config, where)
        else:
            for combination in product(doc, default, config, where):
                key = overrides.canonical(combination)
                if key not in seen:
                    seen.add(key)
                    combinations.append(combination)
        first = False
    if not combinations:
        raise UserError(f"{name} has no combination to run", "add a document of `key: [values]` lines")
    return combinations


def searched(documents, config, name):
    """A file whose first document has `search:`: a space.Search, not combinations."""
    first, where = documents[0], f"{name} document 1"
    if set(first) - {"search", "default"}:
        raise UserError(f"{where} has {sorted(set(map(str, first)) - {'search', 'default'})[0]!r} besides `search:`",
                        "the first document holds `search:` and `default:` only; the space follows after `---`")
    default = defaults(first.get("default"), config, where)
    return space.parse(first["search"], list(enumerate(documents[1:], 2)), default, config, name, checked, check_config)


def defaults(mapping, config, where):
    mapping = {} if mapping is None else mapping  # `default:` with nothing under it
    if not isinstance(mapping, dict):
        raise UserError(f"{where}: default is a {type(mapping).__name__}, not a mapping",
                        "write `default:` then indented `key: value` lines")
    return {named(key, where): checked(key, value, config, where) for key, value in mapping.items()}


def product(doc, default, config, where):
    """The document's combinations over the defaults: one value per key, in the file's order."""
    lists = {}
    for key, values in doc.items():
        named(key, where)
        if not isinstance(values, list) or not values:
            raise UserError(f"{where} key {key!r} has {values!r}, not a list of values",
                            f"write {key}: [{values!r}] for one value, [a, b] for several")
        lists[key] = [checked(key, value, config, where) for value in values]
    for choice in itertools.product(*lists.values()):
        combination = {**default, **dict(zip(lists, choice))}
        check_config(combination, config, where)
        yield combination


def named(key, where):
    if not isinstance(key, str):
        raise UserError(f"{where} has key {key!r}, not a name", "keys are names from code/config.py")
    return key


def checked(key, value, config, where):
    """The value as the run will record it; a wrong key or type is one line naming both."""
    if isinstance(value, str) and key in config and not overrides.compatible(value, config[key]):
        parsed = overrides.value(value)  # YAML 1.1 reads 1e-3 as a string; the command line does not
        if overrides.compatible(parsed, config[key]):
            value = parsed
    one = {key: value}
    overrides.check(one, config, where=where)
    return one[key]


def check_config(combination, config, where):
    """The config checks (utils/settings.py, then code/args_process.py) before any run starts, not in the middle."""
    from utils import settings
    try:
        settings.check(overrides.apply(config, combination))
    except UserError as err:
        what, todo = err.args
        raise UserError(f"{where}, combination {overrides.argv(combination)}: {what}", todo) from None
