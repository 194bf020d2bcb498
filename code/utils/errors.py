"""User mistakes: one line `runtag: <what is wrong> — <what to do>` on stderr, exit status 2."""
import sys


class UserError(Exception):
    """A mistake the user can fix; never a bug of ours, never a crashing experiment."""

    def __init__(self, what, todo):
        super().__init__(what, todo)  # both kept in args: the error pickles (DDP ranks pass it on)

    def __str__(self):
        return f"{self.args[0]} — {self.args[1]}"


def report(err):
    print(f"runtag: {err}", file=sys.stderr)
    return 2
