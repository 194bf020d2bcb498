"""The shape of code/utils/ (see code/utils/README.md): imports only go down, and one module,
utils/runs.py, spells a run folder's layout and builds the name `tag/id`."""
import ast
import sys
from pathlib import Path

UTILS = Path(__file__).resolve().parents[1] / "utils"

# Lowest first: a module may import only modules before it (a package's own __init__ aside).
# A new module goes where what it imports is below it; the test fails until it is placed.
ORDER = """
    errors spawn paths atomic runlock process slurm log signals hardware distributed snapshot overrides
    schema runs amend notes jobs summary checkpoints positions checkpointing cadence tally settings predictions fullness gitrepo notify dependency
    statistic.record statistic.survey statistic.title statistic.cells statistic.rows statistic.output statistic.confidence statistic.frame
    statistic.table statistic.scalars statistic
    recorder session runner tboard plot diff submit listing supervisor runqueue runqueue.slots runqueue.waiter runqueue.verb housekeeping housekeeping.usage housekeeping.listed housekeeping.collect housekeeping.trashed housekeeping.trash housekeeping.carried housekeeping.staging housekeeping.archive housekeeping.merge launch
    sweep sweep.space sweep.plan sweep.job sweep.owner sweep.resume sweep.journal sweep.reconcile sweep.search sweep.drive sweep.queued sweep.local sweep.raypool sweep.slurmarray sweep.verb
    evaluation evaluation.entry evaluation.choice evaluation.child evaluation.workers evaluation.rayeval evaluation.slurmeval evaluation.verb
    cli
""".split()
RANK = {f"utils.{name}": n for n, name in enumerate(ORDER)}

# The run folder's names; `__statistic__/tensorboard/` and its `log` are TensorBoard's own folder.
LAYOUT = {"statistic.json", "checkpoint", "tensorboard", "log", ".reserve", "epoch_last.pth", "epoch_best.pth",
          ".expls.json"}  # a tag folder's summary (utils/summary.py)
ELSEWHERE = {("tboard", "tensorboard"), ("tboard", "log"), ("sweep.space", "log"),  # space: int(..., log=true)
             ("housekeeping.usage", "tensorboard"), ("housekeeping.usage", "log")}  # du's kinds: names shown, not paths


def modules():
    """{dotted name: parsed source} of every module under code/utils/."""
    found = {}
    for path in sorted(UTILS.rglob("*.py")):
        parts = path.relative_to(UTILS.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text())
    return found


def imported(tree, known):
    """The utils modules a module imports, where it stands: lazy imports, and module names in
    strings (importlib's dispatch tables), included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("utils"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield full if full in known else node.module
        elif isinstance(node, ast.Constant) and node.value in known:
            yield node.value


def test_every_import_goes_down():
    found = modules()
    unplaced = sorted(set(found) - set(RANK) - {"utils"})
    assert not unplaced, f"place these in ORDER: {unplaced}"
    upward = []
    for name, tree in found.items():
        for target in imported(tree, found):
            own_package = name.startswith(target + ".")
            if target != name and not own_package and RANK.get(target, -1) >= RANK.get(name, -1):
                upward.append(f"{name} imports {target}")
    assert not upward, upward


def shadowing(folder):
    """The names in a folder that would hide a standard-library module of the same name."""
    names = {p.stem if p.suffix == ".py" else p.name for p in folder.iterdir() if p.suffix == ".py" or p.is_dir()}
    return sorted(names & set(sys.stdlib_module_names))


def test_no_module_hides_a_standard_library_one():
    """cli.py runs as a script, so code/utils/ is first on sys.path: a `utils/queue/` there made every
    `import queue` (the sweep driver's) find it, and every sweep fail."""
    assert not shadowing(UTILS), shadowing(UTILS)
    assert not shadowing(UTILS.parent), shadowing(UTILS.parent)


def docstrings(tree):
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def test_only_runs_spells_the_run_folder_and_its_name():
    spelled, named = [], []
    for name, tree in modules().items():
        short = name.removeprefix("utils.")
        skip = docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in LAYOUT and id(node) not in skip \
                    and short != "runs" and (short, node.value) not in ELSEWHERE:
                spelled.append(f"{short}: {node.value!r}")
            if isinstance(node, ast.JoinedStr) and short != "runs" and builds_a_run_name(node.values):
                named.append(f"{short}: line {node.lineno}")
    assert not spelled, spelled
    assert not named, named


def builds_a_run_name(parts):
    """f"{tag}/{id}", f"{record['tag']}/{record['id']}": a tag, a slash, an id."""
    return any(isinstance(a, ast.FormattedValue) and "tag" in ast.unparse(a.value)
               and isinstance(b, ast.Constant) and b.value == "/"
               and isinstance(c, ast.FormattedValue) and "id" in ast.unparse(c.value)
               for a, b, c in zip(parts, parts[1:], parts[2:]))


def test_the_checks_catch_what_they_look_for():
    """Each check on a module that breaks its rule: the checks can fail."""
    bad = ast.parse('from utils import cli\nname = f"{tag}/{id}"\npath = folder / "statistic.json"\n')
    assert "utils.cli" in set(imported(bad, {"utils.cli"}))
    joined = [n for n in ast.walk(bad) if isinstance(n, ast.JoinedStr)][0]
    assert builds_a_run_name(joined.values)
    assert any(isinstance(n, ast.Constant) and n.value in LAYOUT for n in ast.walk(bad))
    assert shadowing(Path(ast.__file__).parent) != []  # the standard library's own folder shadows itself
