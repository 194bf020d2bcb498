"""User mistakes: one line `runtag: <what is wrong> — <what to do>` on stderr, exit status 2.

The environment's refusals (a full disk, a read-only or forbidden file) are said the same way:
`environment(err)` turns such an OSError into a UserError.
"""
import errno
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


# errno: (what happened, what to do); the message names the file the OSError names.
ENVIRONMENT = {
    errno.ENOSPC: ("no space left on device while writing {}", "free space, then run the command again"),
    errno.EDQUOT: ("disk quota exceeded while writing {}", "free space (or raise the quota), then run the command again"),
    errno.EROFS: ("read-only file system: cannot write {}", "mount it read-write (or move the folder), then run the command again"),
    errno.EACCES: ("permission denied: {}", "give this user access to it (`ls -ld` shows who may), then run the command again"),
    errno.EPERM: ("operation not permitted: {}", "give this user access to it (`ls -ld` shows who may), then run the command again"),
}


def environment(err):
    """The UserError that says an OSError of the environment (ENOSPC, EDQUOT, EROFS, EACCES,
    EPERM) in one line, naming its file; None for any other error, which stays a bug to show."""
    if not isinstance(err, OSError) or err.errno not in ENVIRONMENT:
        return None
    what, todo = ENVIRONMENT[err.errno]
    return UserError(what.format(err.filename if err.filename is not None else "a file"), todo)


def undecodable(path, err):
    """A text file runtag reads (a list, a title, a sweep file) that is not UTF-8."""
    return UserError(f"{path} is not UTF-8 text (byte {err.object[err.start:err.start + 1]!r} at offset {err.start})",
                     "save it as UTF-8, or replace that file")
