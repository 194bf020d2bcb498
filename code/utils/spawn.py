"""A short command's output without importing subprocess: `expls` asks git for its tags'
commits, and importing subprocess (signal, threading, selectors) was a fifth of its start."""
import os


def output(argv):
    """The command's stdout as text, or None if it cannot start or exits non-zero. Its stderr
    goes to /dev/null; the pipe's end is the only descriptor it gets from us (Python opens every
    other one close-on-exec). posix_spawn has no cwd: git takes `-C folder`."""
    read, write = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, write, 1), (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
    except OSError:  # not installed, not executable
        os.close(read)
        return None
    finally:
        os.close(write)
    with open(read, "rb") as pipe:
        out = pipe.read()
    _, status = os.waitpid(pid, 0)
    return out.decode(errors="replace") if os.waitstatus_to_exitcode(status) == 0 else None
