"""SIGINT/SIGTERM end a run as `interrupted`: checkpoints are written atomically, so the last
one on disk is whole, and the caller waits for pending writes before recording the status.

No moment of a run may lose a Ctrl-C. main.py installs the handler before it imports torch;
until the run is `arm()`ed (its Recorder exists, so the status can be written) a signal is only
noted, and arm() raises it. Raising inside an import or a finalizer could be swallowed
("Exception ignored in ..."), so `check()`, called every epoch, raises it again if it was.
"""
import signal

STOPS = (signal.SIGINT, signal.SIGTERM)
received = []  # the signals that arrived, in order
armed = False


class Interrupted(BaseException):
    """Raised in the training loop by SIGINT or SIGTERM (BaseException: no `except Exception` eats it)."""


def handle(signum, frame):
    received.append(signum)
    if armed:
        stop()


def stop():
    # Once: a second signal (Ctrl-C reaches the run and its launcher forwards one too) must not
    # interrupt the orderly end that the first one started.
    for sig in STOPS:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signal.Signals(received[0]).name)


def install():
    for sig in STOPS:
        signal.signal(sig, handle)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal stops the echo, not the run


def arm():
    """From now on a signal raises Interrupted at once; one noted before is raised here."""
    global armed
    armed = True
    check()


def check():
    if received:
        stop()
