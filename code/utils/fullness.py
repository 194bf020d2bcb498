"""A full disk, as a run meets it: the error behind a failure, and a little room held back so
that the failed run can still write its last record and say why (utils/recorder.py).
"""
import errno


def no_space(err):
    """The ENOSPC (or EDQUOT) error among err and the errors it was raised while handling, or None."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):  # a quota is a full disk too
            return err
        err = err.__context__
    return None


def quietly(fn):
    try:
        fn()
    except OSError:
        pass


class Reserve:
    """A little disk space held back (`.reserve` in the run folder) and freed when the disk is
    full, so that the failed run can still write its last record and say why."""

    SIZE = 256 * 1024

    def __init__(self, path):
        self.path = path
        try:
            with open(self.path, "wb") as f:
                f.write(bytes(self.SIZE))  # real blocks, not a sparse file
        except OSError:
            self.path.unlink(missing_ok=True)

    def release(self):
        self.path.unlink(missing_ok=True)
