"""runtag's command line: `python code/utils/cli.py VERB ...`. code/source.sh forwards to it.

Each verb lives in the module of its concern, as `add_<verb>(parser)` and `<verb>(args)`;
only the module of the verb asked for is imported, so completion and --help stay quick.
"""
import argparse
import importlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # code/, for `utils` and the experiment

from utils.errors import UserError, report  # noqa: E402

VERBS = {  # verb: (module, function, one line of help)
    "run": ("utils.launch", "run", "tag the current commit and run it into the next free id"),
    "continue": ("utils.launch", "con", "resume an unfinished run from its last checkpoint (shell: con)"),
    "rerun": ("utils.launch", "rerun", "run a tagged commit again, with a run's overrides, as a new id (shell: re)"),
    "sweep": ("utils.sweep", "sweep", "one run per parameter combination of a YAML file, in parallel"),
    "record": ("utils.statistic.record", "record", "append runs to an experiment list"),
    "title": ("utils.statistic.title", "title", "collect the columns of a list's table"),
    "table": ("utils.statistic.table", "table", "build the comparison table of a list"),
    "plot": ("utils.plot", "plot", "learning curves of runs as a PNG"),
    "diff": ("utils.diff", "diff", "what differs between two runs"),
    "itb": ("utils.tboard", "itb", "TensorBoard over the chosen runs, on 127.0.0.1"),
    "expls": ("utils.listing", "expls", "one line per tag"),
    "expels": ("utils.listing", "expels", "one line per run of a tag"),
    "tags": ("utils.listing", "tag_names", "tag names, for shell completion"),
}
ALIASES = {"con": "continue", "re": "rerun"}
SHELL_NAMES = {"continue": "con", "diff": "expdiff"}  # messages name what the shell runs: `continue`
                                                      # is a builtin there and `diff` is diff(1)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit status 2, like every user mistake."""

    def error(self, message):
        # argparse counts an empty `key=value ...` list as missing; it is optional
        message = message.replace("required: tag, key=value", "required: tag")
        message = " ".join(message.splitlines())  # an option typed with a line break in it: still one line
        raise UserError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


def usage():
    lines = ["usage: cli.py VERB [args]  (each verb has --help)", ""]
    lines += [f"  {verb:<9} {text}" for verb, (_, _, text) in VERBS.items() if verb != "tags"]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(usage())
            return 0
        verb = ALIASES.get(argv[0], argv[0])
        if verb not in VERBS:
            raise UserError(f"unknown command {argv[0]!r}", "run `cli.py --help` for the list")
        module_name, function, text = VERBS[verb]
        module = importlib.import_module(module_name)
        parser = Parser(prog=SHELL_NAMES.get(verb, verb), description=text)
        parser.set_defaults(command=" ".join([argv[0]] + argv[1:]))  # recorded in statistic.json
        getattr(module, f"add_{function}")(parser)
        return getattr(module, function)(parser.parse_intermixed_args(argv[1:])) or 0
    except UserError as err:
        return report(err)
    except KeyboardInterrupt:  # Ctrl-C before a run started: nothing to record, no traceback
        print("runtag: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `expls | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
