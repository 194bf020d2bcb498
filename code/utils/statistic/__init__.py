"""Comparing runs: experiment lists (record), their columns (title), their tables (table).

For notebooks, with code/ on sys.path:

    from utils.statistic import load_table, load_scalars
    df = load_table("record")                 # the table of a list, as `table record` builds it
    curves = load_scalars(["lra/0", "lrb"])   # TensorBoard scalars: columns run, tag, step, value
"""


def load_table(list_name="record", group=False, vs=None, notes=False):
    """The table of an experiment list as a pandas DataFrame (writes nothing); `vs` (grouped only):
    each group's difference to that group, with its 95% interval and p-value; `notes`: a `note` column."""
    from utils.statistic.table import load  # imported when used: `cli.py record` stays quick
    return load(list_name, group, vs, notes)


def load_scalars(specs, tags=None):
    """The TensorBoard scalars of runs ('tag', 'tag/id' or a glob of tags) as a long DataFrame
    with columns run, tag, step, value; `tags` keeps only those scalar names."""
    from utils.statistic.scalars import scalars
    return scalars(specs, tags)
