"""`eval` (shell `expeval`): the command. (Being built.)"""
from utils.errors import UserError


def add_evaluate(p):
    p.add_argument("specs", nargs="+", metavar="TAG[/ID]", help="runs: a tag, tag/id, or a quoted glob")


def evaluate(args):
    raise UserError("eval is not built yet", "see issue 27")
