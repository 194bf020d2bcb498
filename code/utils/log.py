"""The run's `log`: a copy of its stdout (tqdm bars go to stderr and stay out) and any traceback.

The log keeps everything; the terminal only gets an echo. A run outlives its terminal and its
pipe (`| head`, quitting `less`, a closed window): when writing there fails, the echo stops and
training goes on.
"""
import os
import sys
import traceback


class Echo:
    """A stream that goes quiet, for good, the first time writing to it fails (EPIPE, EIO, closed)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        try:
            if self.stream is not None:
                self.stream.write(text)
        except (OSError, ValueError):
            self.gone()
        return len(text)

    def flush(self):
        try:
            if self.stream is not None:
                self.stream.flush()
        except (OSError, ValueError):
            self.gone()

    def gone(self):
        """Stop echoing; point the descriptor at /dev/null so that the interpreter's own flush
        at exit does not fail on what is left in the buffer."""
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        self.stream = None

    def isatty(self):
        try:
            return self.stream is not None and self.stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self):
        if self.stream is None:
            raise OSError("the terminal is gone")
        return self.stream.fileno()


class Tee(Echo):
    """Writes to the log and echoes to the terminal; line-buffered so a crash loses nothing printed."""

    def __init__(self, stream, path):
        super().__init__(stream)
        self.file = open(path, "a", buffering=1)

    def write(self, text):
        self.file.write(text)  # first: the log must have it even if the echo fails
        return super().write(text)

    def flush(self):
        self.file.flush()
        super().flush()

    def close(self):
        if sys.stdout is self:
            sys.stdout = Echo(self.stream)
        self.file.close()


def tee_stdout(path):
    """stdout into the log as well; stderr (progress bars, warnings) made safe to lose."""
    sys.stdout = Tee(sys.__stdout__, path)
    if not isinstance(sys.stderr, Echo):
        sys.stderr = Echo(sys.stderr)
    return sys.stdout


def write_traceback(path, prefix="", echo=True):
    """The current exception's traceback to the log, then to stderr (which may be gone)."""
    text = prefix + traceback.format_exc()
    with open(path, "a") as f:
        f.write(text)
    if echo:
        Echo(sys.stderr).write(text)
