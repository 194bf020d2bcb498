"""User mistakes: one line `runtag: <what is wrong> — <what to do>` on stderr, exit status 2."""
import sys


class UserError(Exception):
    """A mistake the user can fix; never a bug of ours, never a crashing experiment."""

    def __init__(self, what, todo):
        super().__init__(what, todo)  # both kept in args: the error pickles (DDP ranks pass it on)

    def __str__(self):
        return f"{self.args[0]} — {self.args[1]}"


def shown(value, limit=60):
    """A value as a one-line message shows it: its repr, cut short enough to read."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit + 2 else text[:limit] + "..."


def report(err):
    print(f"runtag: {err}", file=sys.stderr)
    return 2
