"""`note`: a timestamped line added to a run's record (`notes`), or the notes printed. (Being built.)"""
from utils.errors import UserError


def add_note(p):
    p.add_argument("run", metavar="TAG[/ID]", help="the run (a tag: its newest run)")
    p.add_argument("text", nargs="?", help="the line to add; none: print the run's notes")


def note(args):
    raise UserError("note is not built yet", "see issue 27")
