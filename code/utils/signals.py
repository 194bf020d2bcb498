"""SIGINT/SIGTERM end a run as `interrupted`: checkpoints are written atomically, so the last
one on disk is whole, and the caller waits for pending writes before recording the status.

No moment of a run may lose a Ctrl-C. utils/runner.py installs the handler when main.py imports
it, before torch;
until the run is `arm()`ed (its Recorder exists, so the status can be written) a signal is only
noted, and arm() raises it. Raising inside an import or a finalizer could be swallowed
("Exception ignored in ..."), so `check()` raises it again if it was.

While the loop trains (from `run.track()`, `hold()`, to the end of training, `release()`) a
signal is only noted, so that no step is left half done: utils/session.py looks at `pending()`
after every optimizer step, writes a step checkpoint and stops there; a signal during
validation stops the run at its evaluation, after the checkpoint.
"""
import signal
import time

STOPS = (signal.SIGINT, signal.SIGTERM)
received = []  # the names of the signals that arrived, in order
armed = False
deferring = False


class Interrupted(BaseException):
    """Raised in the training loop by SIGINT or SIGTERM (BaseException: no `except Exception` eats it)."""


def handle(signum, frame):
    received.append(signal.Signals(signum).name)
    if armed and not deferring:
        stop()


def stop():
    # Once: a second signal (Ctrl-C reaches the run and its launcher forwards one too) must not
    # interrupt the orderly end that the first one started.
    for sig in STOPS:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(received[0])


def install():
    for sig in STOPS:
        signal.signal(sig, handle)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal stops the echo, not the run


def arm():
    """From now on a signal raises Interrupted at once; one noted before is raised here."""
    global armed
    armed = True
    check()


def disarm():
    """The run's end is recorded: from now on a signal ends the process at once, quietly. Nothing
    is left to save, and Interrupted raised in a finalizer would print "Exception ignored in ..."
    (a DDP rank that torch.distributed.run stops after a peer was killed, while it exits)."""
    for sig in STOPS:
        signal.signal(sig, signal.SIG_DFL)


def check():
    if received:
        stop()


def pending():
    """Whether a stop was asked for and not raised yet (inside deferred())."""
    return bool(received)


def noted_soon(seconds):
    """Whether a stop was noted, or is within `seconds` (under hold())."""
    end = time.monotonic() + seconds
    while not received and time.monotonic() < end:
        time.sleep(0.05)  # a signal cuts the sleep short and its handler runs
    return bool(received)


def join():
    """Another rank was stopped: so is this one, at the same step."""
    if not received:
        received.append("a stop of another rank")


def hold():
    """From the loop's run.track() to its end: a signal is only noted, and acted on at the next
    optimizer step or evaluation (utils/session.py), after a checkpoint."""
    global deferring
    deferring = True


def release():
    """Training is over (the test): a signal raises at once again; one noted is raised here."""
    global deferring
    deferring = False
    check()
