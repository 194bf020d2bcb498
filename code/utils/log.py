"""The run's `log`: a copy of its stdout (tqdm bars go to stderr and stay out) and any traceback."""
import sys
import traceback


class Tee:
    """Writes to the terminal and to the log; line-buffered so a crash loses nothing printed."""

    def __init__(self, stream, path):
        self.stream, self.file = stream, open(path, "a", buffering=1)

    def write(self, text):
        self.stream.write(text)
        return self.file.write(text)

    def flush(self):
        self.stream.flush()
        self.file.flush()

    def close(self):
        if sys.stdout is self:
            sys.stdout = self.stream
        self.file.close()

    def isatty(self):
        return self.stream.isatty()

    def fileno(self):
        return self.stream.fileno()


def tee_stdout(path):
    sys.stdout = Tee(sys.__stdout__, path)
    return sys.stdout


def write_traceback(path, prefix=""):
    """The current exception's traceback to stderr and to the log."""
    text = prefix + traceback.format_exc()
    sys.stderr.write(text)
    with open(path, "a") as f:
        f.write(text)
