"""expls, expels: what has been run, one line each."""
from utils import runs


def add_tag_names(p):
    pass


def tag_names(args):
    print("\n".join(runs.tags()))
