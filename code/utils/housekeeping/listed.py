"""listed: a run's lines in the experiment lists (__statistic__/exper-list/*.txt), taken out when
`rm` removes it and put back where they were when `rm --undo` brings it back.

Each list is rewritten atomically under the lists' folder lock (utils/atomic.py), as `record`
appends; the other lines keep their bytes, so an undo gives the file back as it was.
"""
from utils import atomic, paths


def places(name):
    """{list name: [line index, ...]} of the lines that name the run, in every list."""
    found = {}
    folder = paths.lists()
    for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            continue  # a list that does not read is not ours to rewrite; `table` names it
        at = [i for i, line in enumerate(lines) if line.strip() == name]
        if at:
            found[path.stem] = at
    return found


def take_out(name, lists):
    """The run's lines out of the lists named (a list that no longer names it: left as it is)."""
    for list_name in lists:
        edit(list_name, lambda lines: [line for line in lines if line.strip() != name])


def put_back(name, lists):
    """The run's lines back at their indexes, `name` possibly a new id; a line already there stays one."""
    for list_name, at in lists.items():
        def insert(lines, at=at):
            if any(line.strip() == name for line in lines):
                return lines
            for index in sorted(at):
                lines.insert(min(index, len(lines)), name + "\n")
            return lines
        edit(list_name, insert)


def edit(list_name, change):
    path = paths.exper_list(list_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.locked(path.parent):
        old = path.read_text().splitlines(keepends=True) if path.exists() else []
        if old and not old[-1].endswith("\n"):
            old[-1] += "\n"
        new = change(list(old))
        if new != old:
            atomic.write_text(path, "".join(new))
