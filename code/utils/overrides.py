"""`key=value` overrides: parsed as Python literals (never eval), checked against config.py."""
import ast
import difflib
import importlib.util
import json
import traceback
import types

from utils import paths
from utils.errors import UserError, shown


def load_config(code_dir=paths.CODE):
    """config.py's assignments as a dict (modules and _private names left out)."""
    path = code_dir / "config.py"
    spec = importlib.util.spec_from_file_location("runtag_config", path)
    module = importlib.util.module_from_spec(spec)
    fix = "fix code/config.py (`python code/config.py` shows it)"
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:  # a file that is not UTF-8 comes as one too
        raise UserError(f"{path} line {err.lineno}: {err.msg}", fix) from None
    except Exception as err:  # noqa: BLE001 — the user's file: whatever it raises is theirs to fix, in one line
        frames = [f.lineno for f in traceback.extract_tb(err.__traceback__) if f.filename == str(path)]
        text = " ".join(str(err).split())[:120]
        raise UserError(f"{path} line {frames[-1] if frames else '?'}: {type(err).__name__}: {text}", fix) from None
    return {k: v for k, v in vars(module).items()
            if not k.startswith("_") and not isinstance(v, types.ModuleType)}


MAX_VALUE = 1000  # characters: no config value is longer, and literal_eval of a huge one can recurse to death


def parse(items, config):
    """['lr=0.1', 'optimizer=sgd'] -> {'lr': 0.1, 'optimizer': 'sgd'}, checked against config."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UserError(f"malformed override {item!r}", "write key=value, e.g. lr=0.01")
        if len(text) > MAX_VALUE:
            raise UserError(f"invalid config value {key}={shown(text)}",
                            f"give a value of at most {MAX_VALUE} characters")
        out[key] = value(text)
    check(out, config)
    return out


def value(text):
    """A Python literal when it is one (0.1, 3, True, [1, 2], 'x'), else the plain string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, RecursionError, MemoryError):  # deep nesting: `-----...1`
        return text


def check(overrides, config, where="override"):
    """Unknown keys name the closest real one; a value must have the type of the default."""
    for key, val in overrides.items():
        if key not in config:
            close = suggest(key, config)
            hint = f"did you mean {close}?" if close else "see code/config.py for the keys"
            raise UserError(f"unknown config key {key!r} in {where}", hint)
        default = config[key]
        if not compatible(val, default):
            raise UserError(f"{where} {key}={val!r} is of type {type(val).__name__}, "
                            f"config.py has {type(default).__name__}",
                            f"give {key} a value like {default!r}")
        if isinstance(default, float) and isinstance(val, int) and not isinstance(val, bool):
            overrides[key] = float(val)


def suggest(typo, keys):
    """The key a mistyped one most likely meant, or None.

    Edit distance alone misleads on the usual typos, a real key lengthened or cut short:
    difflib finds `lrate` nearer `lr_step` than `lr`. So first the keys sharing the most
    letters with it as a whole: a key the typo contains (`lrate` starts with `lr`), or one
    that starts with the typo (`epoch`, cut short from `epochs`); edit distance breaks ties
    among them, and only without any such key decides alone (`chanels`).
    """
    typo = typo.lower()
    shared = {k: len(k) for k in keys if len(k) > 1 and k in typo}  # a 1-letter key is in most words
    shared.update({k: len(typo) for k in keys if k.startswith(typo)})
    if shared:
        most = max(shared.values())
        return difflib.get_close_matches(typo, [k for k in shared if shared[k] == most], n=1, cutoff=0)[0]
    close = difflib.get_close_matches(typo, keys, n=1)
    return close[0] if close else None


def compatible(val, default):
    if default is None or val is None:
        return True
    if isinstance(default, bool) or isinstance(val, bool):
        return isinstance(val, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(val, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(val, (list, tuple))
    return isinstance(val, type(default))


def apply(config, overrides):
    return {**config, **overrides}


# Overrides as text: `key=value` words that `run` parses back to the same values.

def canonical(overrides):
    """Overrides as text that equal overrides share, whatever their order or JSON round trip."""
    return json.dumps(overrides, sort_keys=True)


def argv(overrides):
    """`key=value` words, joined by spaces, that `run` parses back to exactly these values."""
    return " ".join(words(overrides))


def words(overrides):
    return [f"{k}={text(v)}" for k, v in overrides.items()]


def text(val):
    """A string stays bare unless `run` would read it as something else (3, True, [1])."""
    if isinstance(val, str) and value(val) == val and val == val.strip():
        return val
    return repr(val)
