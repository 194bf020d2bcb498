"""SIGINT/SIGTERM end a run as `interrupted`: checkpoints are written atomically, so the last
one on disk is whole, and the caller waits for pending writes before recording the status."""
import signal


class Interrupted(BaseException):
    """Raised in the training loop by SIGINT or SIGTERM (BaseException: no `except Exception` eats it)."""


def raise_interrupted(signum, frame):
    # Once: a second signal (Ctrl-C reaches the run and its launcher forwards one too) must not
    # interrupt the orderly end that the first one started.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signal.Signals(signum).name)


def install():
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, raise_interrupted)
