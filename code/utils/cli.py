"""runtag's command line: `python code/utils/cli.py VERB ...`. code/source.sh forwards to it.

Each verb lives in the module of its concern, as `add_<verb>(parser)` and `<verb>(args)`;
only the module of the verb asked for is imported, so completion and --help stay quick.
SHELL is the one table of the shell's names: source.sh defines a function per name
(`cli.py --functions`) and completes them (`cli.py --complete NAME WORD PREVIOUS`).
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # code/, for `utils` and the experiment

from utils.errors import UserError, environment, report  # noqa: E402

VERBS = {  # verb: (module, function, one line of help)
    "run": ("utils.launch", "run", "tag the current commit and run it into the next free id"),
    "continue": ("utils.launch", "con", "resume an unfinished run from its last checkpoint (shell: con)"),
    "rerun": ("utils.launch", "rerun", "run a tagged commit again, with a run's overrides, as a new id (shell: re)"),
    "sweep": ("utils.sweep.verb", "sweep", "one run per parameter combination of a YAML file, in parallel"),
    "record": ("utils.statistic.record", "record", "append runs to an experiment list"),
    "title": ("utils.statistic.title", "title", "collect the columns of a list's table"),
    "table": ("utils.statistic.table", "table", "build the comparison table of a list"),
    "plot": ("utils.plot", "plot", "learning curves of runs as a PNG"),
    "diff": ("utils.diff", "diff", "what differs between two runs"),
    "itb": ("utils.tboard", "itb", "TensorBoard over the chosen runs, on 127.0.0.1"),
    "expls": ("utils.listing", "expls", "one line per tag"),
    "expels": ("utils.listing", "expels", "one line per run of a tag"),
    "eval": ("utils.evaluation.verb", "evaluate", "score ended runs' checkpoints again, into their records (shell: expeval)"),
    "note": ("utils.notes", "note", "add a line to a run's notes, or print them"),
    "queue": ("utils.runqueue.verb", "queue", "the runs `run --queue` made that wait for a slot; `queue rm RUN`"),
    "du": ("utils.housekeeping.usage", "du", "disk use per run and tag: checkpoints, TensorBoard, log (shell: expdu)"),
    "gc": ("utils.housekeeping.collect", "gc", "remove finished runs' checkpoints but best and last (shell: expgc)"),
    "rm": ("utils.housekeeping.trash", "remove", "remove runs into __result__/.trash/; --undo, --purge (shell: exprm)"),
    "archive": ("utils.housekeeping.archive", "archive", "runs into one compressed file (shell: exparchive)"),
    "unarchive": ("utils.housekeeping.archive", "unarchive", "the runs of an archive back (shell: expunarchive)"),
    "import": ("utils.housekeeping.merge", "import_runs", "runs made in another clone, merged in (shell: expimport)"),
}
SHELL = {  # shell function: the verb it runs. Not `continue` nor `eval` (shell builtins) nor `diff` (diff(1)).
    "run": "run", "con": "continue", "rerun": "rerun", "re": "rerun", "sweep": "sweep",
    "record": "record", "title": "title", "table": "table", "plot": "plot", "expdiff": "diff",
    "itb": "itb", "expls": "expls", "expels": "expels", "expeval": "eval", "note": "note",
    "queue": "queue", "expdu": "du", "expgc": "gc", "exprm": "rm", "exparchive": "archive",
    "expunarchive": "unarchive", "expimport": "import",  # exp*: du(1), rm(1), import(1) stay the system's
}
# Verbs that hold no thread, no child, no open file and no atexit hook once they return: their
# process ends without the interpreter's teardown (freeing every module: ~4 ms of a 50 ms listing).
QUICK = {"expls", "expels", "record", "--functions", "--complete"}
SHOWN = {verb: name for name, verb in reversed(SHELL.items())}  # messages name what the shell runs: `con`


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit status 2, like every user mistake."""

    def _get_formatter(self):
        """argparse's own, at the width it would take (the terminal's less 2), but without its
        import of shutil (bz2, lzma) for that: each argument added and each parse asks for one."""
        return self.formatter_class(prog=self.prog, width=columns() - 2)

    def error(self, message):
        # argparse counts an empty `key=value ...` list as missing; it is optional
        message = message.replace("required: tag, key=value", "required: tag")
        message = " ".join(message.splitlines())  # an option typed with a line break in it: still one line
        raise UserError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


def columns():
    """shutil.get_terminal_size().columns: $COLUMNS, else the terminal's, else 80."""
    try:
        n = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        n = 0
    if n <= 0:
        try:
            n = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            n = 0
    return n or 80


def usage():
    lines = ["usage: cli.py VERB [args]  (each verb has --help)", ""]
    lines += [f"  {verb:<9} {text}" for verb, (_, _, text) in VERBS.items()]
    return "\n".join(lines)


def parser_of(name):
    """(the verb's module, its function, its parser) for a verb or a shell name; None if unknown."""
    verb = SHELL.get(name, name)
    if verb not in VERBS:
        return None
    module_name, function, text = VERBS[verb]
    module = __import__(module_name, fromlist=["_"])  # importlib.import_module, without importlib's import
    parser = Parser(prog=SHOWN.get(verb, verb), description=text)
    getattr(module, f"add_{function}")(parser)
    return module, function, parser


def complete(name, word, previous):
    """The words tab completion offers after the shell function `name` (source.sh filters them)."""
    from utils import listing
    if word.startswith("-"):
        found = parser_of(name)
        return [s for action in found[2]._actions for s in action.option_strings] if found else []
    verb = SHELL.get(name, name)
    if (verb, previous) == ("run", "-m"):
        return []
    if verb in ("title", "table") or previous == "-l":
        return listing.list_names()
    if verb in ("run", "expels", "sweep") and previous not in ("--from", "--init-from"):
        return listing.tag_words()
    return listing.tag_words(runs_too=True, unfinished=verb == "continue")  # a finished run is refused by con


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(usage())
            return 0
        if argv[0] in ("--functions", "--complete"):  # for source.sh
            print("\n".join(SHELL if argv[0] == "--functions" else complete(*(argv[1:] + ["", "", ""])[:3])))
            return flushed(0, argv)
        found = parser_of(argv[0])
        if not found:
            raise UserError(f"unknown command {argv[0]!r}", "run `cli.py --help` for the list")
        module, function, parser = found
        parser.set_defaults(command=" ".join([argv[0]] + argv[1:]))  # recorded in statistic.json
        return flushed(getattr(module, function)(parser.parse_intermixed_args(argv[1:])) or 0, argv)
    except UserError as err:
        return report(err)
    except KeyboardInterrupt:  # Ctrl-C before a run started: nothing to record, no traceback
        print("runtag: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `expls | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # the backstop: a full disk, a read-only or forbidden file, in any verb
        said = environment(err)
        if said is None:
            raise
        return report(said)


def flushed(status, argv):
    """A QUICK verb's output flushed here, where a failure to write it (a reader gone, a full
    disk) is said like any other: leave() skips the flush at the interpreter's exit."""
    if argv[0] in QUICK:
        sys.stdout.flush()
    return status


def leave(status, argv):
    """sys.exit(status), or for a QUICK verb os._exit(status): no teardown."""
    if not argv or argv[0] not in QUICK:
        sys.exit(status)
    try:
        sys.stderr.flush()
    except OSError:  # nowhere left to say anything
        pass
    os._exit(status)


if __name__ == "__main__":
    leave(main(), sys.argv[1:])
