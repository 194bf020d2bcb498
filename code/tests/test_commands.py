"""run, con, rerun, expls, expels through the real shell functions, in temporary git projects.

What must hold: ids 0, 1, ... per tag, also for concurrent runs; a fixed seed reproduces a run
bit for bit, by `rerun -f` from another commit and by `con` after a SIGKILL; `con`/`rerun` of
another commit leave the user's HEAD, index, tree and stash as they were; every user mistake
is one `runtag: ` line, exit 2, and nothing written.
"""
import json
import os
import shutil
import signal
import subprocess

import pytest

from conftest import Project, learned, leftover_worktree, ok, read_json, user_state, wait_for

SEED_RUN = "epochs=2"


def dirty_the_user_tree(project):
    """A staged change, an unstaged one under code/, an untracked file and a stash entry; the
    unstaged change alters training, so a run that used the user's tree could not reproduce."""
    (project.root / "notes.txt").write_text("staged\n")
    project.git("add", "notes.txt")
    (project.root / "stashed.txt").write_text("stash me\n")
    project.git("add", "stashed.txt")
    project.git("stash", "push", "-m", "user's stash", "--", "stashed.txt")
    config = project.root / "code/config.py"
    config.write_text(config.read_text().replace("lr = 2e-3 ", "lr = 9e-1 "))
    (project.root / "code/scratch.py").write_text("# not committed\n")


def commit_a_change(project):
    """Move HEAD past the tag with a change that alters training (dropout)."""
    config = project.root / "code/config.py"
    return project.commit("code/config.py", config.read_text().replace("dropout = 0.25", "dropout = 0.0"),
                          "no dropout")


# ---- ids ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_concurrent_runs_of_one_tag_get_different_ids(project):
    out = ok(project.sh(f"run -f same {SEED_RUN} & run -f same {SEED_RUN} & wait", shell="bash"))
    assert sorted(p.name for p in (project.root / "__result__/same").iterdir()) == ["0", "1"], out.stdout
    assert [project.record("same", i)["status"] for i in (0, 1)] == ["finished", "finished"]
    assert project.git("tag", "--list") == "same"
    # the same seed and commit: the two concurrent runs are the same experiment twice
    assert learned(project.record("same", 0)) == learned(project.record("same", 1))


def test_run_m_commits_only_code_then_tags(project):
    (project.root / "code/config.py").write_text((project.root / "code/config.py").read_text() + "# wider\n")
    (project.root / "README.md").write_text("the user's own edit, not under code/\n")
    before = project.git("rev-parse", "HEAD")
    ok(project.sh('run -m "wider" -f wide epochs=1', shell="zsh"))
    head = project.git("rev-parse", "HEAD")
    assert head != before and project.git("log", "-1", "--format=%s") == "wider"
    assert project.git("diff", "--name-only", "HEAD~1", "HEAD") == "code/config.py"
    assert project.git("status", "--porcelain") == "M README.md"  # left for the user
    assert project.git("rev-parse", "wide^{commit}") == head == project.record("wide", 0)["commit"]
    assert project.git("cat-file", "-t", "wide") == "tag"  # annotated


# ---- reproduction, and the user's work untouched ---------------------------------------

def test_rerun_f_from_a_later_commit_reproduces_and_leaves_the_user_alone(project):
    ok(project.sh(f"run -f rep {SEED_RUN} lr=0.005", shell="zsh"))
    tagged = project.git("rev-parse", "HEAD")
    commit_a_change(project)
    dirty_the_user_tree(project)
    before = user_state(project)
    orphan = leftover_worktree(project)

    out = ok(project.sh("rerun -f rep", shell="zsh"))

    assert user_state(project) == before
    assert not orphan.exists()  # cleaned up as well
    first, again = project.record("rep", 0), project.record("rep", 1)
    assert again["commit"] == tagged and again["rerun_of"] == "rep/0" and "rep/1" in out.stdout
    assert again["overrides"] == {"epochs": 2, "lr": 0.005} and again["seed"] == first["seed"]
    assert again["hparams"] == first["hparams"]
    assert learned(again) == learned(first)
    assert not list((project.root / "__result__/.worktrees").iterdir())  # the worktree is gone


@pytest.mark.slow
def test_con_after_sigkill_equals_an_uninterrupted_run(project):
    """Kill run k mid-training (its main.py and the CLI), move HEAD and dirty the tree, `con k`
    from a worktree; then `rerun -f k`: the uninterrupted twin. Their metrics are identical."""
    spec = ["epochs=8", "batch_size=8", "channels=8", "checkpoint_interval=0"]  # many short steps: cheap, yet ~0.2 s an epoch
    shell = subprocess.Popen(["bash", "-c", f". code/source.sh\nrun -f k {' '.join(spec)}"], cwd=project.root,
                             env=project.env(), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    statistic = project.run_dir("k", 0) / "statistic.json"
    try:
        record = wait_for(lambda: (r := read_json(statistic)) and r["epoch"] >= 2 and r, what="epoch 2 of k/0")
        os.killpg(shell.pid, signal.SIGSTOP)    # the CLI frozen first: seeing main.py die, it would record it `killed`
        os.kill(record["pid"], signal.SIGKILL)  # main.py, in a process group of its own
        os.killpg(shell.pid, signal.SIGKILL)    # the shell and the CLI waiting on main.py
    finally:
        shell.wait()
    wait_for(lambda: not os.path.exists(f"/proc/{record['pid']}/status")
             or "State:\tZ" in open(f"/proc/{record['pid']}/status").read(), what="main.py to die")
    killed = project.record("k", 0)
    assert killed["status"] == "running" and 2 <= killed["epoch"] < 8, "the kill must land mid-training"
    last = os.readlink(project.run_dir("k", 0) / "checkpoint/epoch_last.pth")
    row = ok(project.sh("expels k")).stdout.splitlines()[1].split()
    assert row[:4] == ["k/0", "dead", f"{killed['epoch']}/8", last.removeprefix("epoch_").removesuffix(".pth")]

    commit_a_change(project)
    dirty_the_user_tree(project)
    before = user_state(project)
    out = ok(project.sh("con k", shell="bash"))
    assert user_state(project) == before
    assert "continuing k/0" in out.stdout

    ok(project.sh("rerun -f k", shell="bash"))
    assert user_state(project) == before
    resumed, straight = project.record("k", 0), project.record("k", 1)
    assert resumed["status"] == straight["status"] == "finished"
    assert resumed["epoch"] == straight["epoch"] == 8
    assert learned(resumed) == learned(straight)
    log = (project.run_dir("k", 0) / "log").read_text()
    assert "epoch 1/8" in log and "continuing after epoch" in log  # appended, not replaced
    assert len(list((project.run_dir("k", 0) / "tensorboard").glob("events.out.tfevents.*"))) == 2


# ---- user mistakes ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def with_runs(shared_project):
    """One finished run `s`, a second tag `taken` marking an older commit, HEAD past both."""
    p = shared_project
    ok(p.sh(f"run -f s {SEED_RUN}"))
    p.git("tag", "-a", "taken", "-m", "an older experiment")
    p.commit("README.md", "moved on\n", "a later commit")
    return p


def snapshot(project):
    """What a mistake must not change: tags, HEAD, the tree, and every file we write."""
    files = sorted(str(f.relative_to(project.root)) for top in ("__result__", "__statistic__")
                   if (project.root / top).exists() for f in (project.root / top).rglob("*"))
    return (project.git("tag", "--list"), project.git("rev-parse", "HEAD"),
            project.git("status", "--porcelain", "--untracked-files=all"), files)


def dirty(p):
    (p.root / "code/model.py").write_text((p.root / "code/model.py").read_text() + "# half-done\n")
    return lambda: p.git("checkout", "--", "code/model.py")


def no_identity(p):
    home = p.root.parent / "empty-home"
    home.mkdir(exist_ok=True)
    p.git("config", "--unset", "user.name")
    p.git("config", "--unset", "user.email")

    def restore():
        p.git("config", "user.name", "Test Researcher")
        p.git("config", "user.email", "researcher@example.com")
    return restore, (f"export HOME={home} GIT_CONFIG_NOSYSTEM=1; unset GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL "
                     "GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL EMAIL\n")


MISTAKES = {  # name: (command, words the line must hold, setup)
    "dirty tree": ("run fresh", ["code/model.py", "run -m"], dirty),
    "invalid tag slash": ("run a/b", ["invalid tag name"], None),
    "invalid tag dots": ("run a..b", ["invalid tag name"], None),
    "invalid tag comma": ("run a,b", ["invalid tag name"], None),
    "invalid tag space": ("run 'a b'", ["invalid tag name"], None),
    "taken tag": ("run taken", ["already marks commit", "rerun taken"], None),
    "unknown tag con": ("con nope", ["unknown tag 'nope'", "expls"], None),
    "unknown tag rerun": ("rerun nope", ["unknown tag 'nope'"], None),
    "unknown tag expels": ("expels nope", ["unknown tag 'nope'"], None),
    "unknown tag itb": ("itb nope", ["unknown tag 'nope'"], None),
    "unknown id con": ("con s/7", ["unknown run 's/7'", "expels s"], None),
    "unknown id rerun": ("rerun s/x", ["unknown run 's/x'"], None),
    "unknown id from": ("run --from s/9 fresh", ["unknown run 's/9'"], None),
    "finished con": ("con s/0", ["s/0 is finished", "rerun s/0"], None),
    "unknown key": ("run fresh lrr=0.1", ["unknown config key 'lrr'", "did you mean lr?"], None),
    "bad type": ("run fresh lr=abc", ["lr='abc'", "float"], None),
    "malformed override": ("run fresh lr", ["malformed override 'lr'"], None),
    "bad value": ("run fresh optimizer=rmsprop", ["optimizer='rmsprop'"], None),
    "unknown option": ("run --frm s/0 fresh", ["unrecognized arguments"], None),
    "no identity": ("run fresh", ["no identity", "git config user.email"], no_identity),
}


@pytest.mark.parametrize("shell", ["bash", "zsh"])
@pytest.mark.parametrize("name", MISTAKES)
def test_user_mistake_is_one_line_exit_2_and_writes_nothing(with_runs, name, shell):
    command, words, setup = MISTAKES[name]
    restore, prefix = None, ""
    if setup:
        made = setup(with_runs)
        restore, prefix = made if isinstance(made, tuple) else (made, "")
    try:
        before = snapshot(with_runs)
        out = with_runs.sh(prefix + command, shell=shell)
        after = snapshot(with_runs)
    finally:
        if restore:
            restore()
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("runtag: "), out.stderr
    for word in words:
        assert word in lines[0]
    assert after == before


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_not_a_git_repository(with_runs, tmp_path, shell):
    bare = Project(tmp_path / "copy")
    shutil.copytree(with_runs.root, bare.root, ignore=shutil.ignore_patterns(".git", "__result__", "__statistic__"))
    out = bare.sh("run fresh", shell=shell)
    lines = out.stderr.splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("runtag: "), out.stderr
    assert "is not a git repository" in lines[0]
    assert sorted(p.name for p in bare.root.iterdir()) == sorted(
        p.name for p in with_runs.root.iterdir() if p.name not in (".git", "__result__", "__statistic__"))


# ---- --from, --init-from, listings ------------------------------------------------------

def test_run_from_inherits_overrides_and_init_from_is_recorded(with_runs):
    p = with_runs
    ok(p.sh("run --from s/0 later lr=0.001 epochs=1"))
    child = p.record("later", 0)
    assert child["overrides"] == {"epochs": 1, "lr": 0.001} and child["parent"] == "s/0"
    ok(p.sh("run --init-from s later", shell="zsh"))
    init = p.record("later", 1)
    assert init["init_from"] == "s/0" and init["parent"] == "s/0" and init["overrides"] == {"epochs": 2}


def test_expls_and_expels_align_one_line_each(with_runs):
    p = with_runs
    ghost = p.run_dir("ghost", 0)  # a run whose process vanished without a word
    ghost.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = {**p.record("s", 0), "tag": "ghost", "status": "running", "pid": dead.pid, "epoch": 7, "epochs": 30}
    (ghost / "statistic.json").write_text(json.dumps(record))
    (ghost / "checkpoint").mkdir()
    (ghost / "checkpoint/epoch_4.pth").write_bytes(b"")  # trained to 7, written up to 4: con goes on after 4
    (ghost / "checkpoint/epoch_last.pth").symlink_to("epoch_4.pth")
    try:
        listing = ok(p.sh("expls", shell="zsh")).stdout.splitlines()
        per_run = ok(p.sh("cd code && expels s", shell="bash")).stdout.splitlines()
        ghostly = ok(p.sh("expels ghost")).stdout.splitlines()
    finally:
        shutil.rmtree(ghost.parent)
    header, *rows = listing
    assert header.split() == ["TAG", "RUNS", "FINISHED", "COMMIT", "DATE", "SUBJECT"]
    row = next(r for r in rows if r.startswith("s "))
    assert row.split()[:4] == ["s", "1", "1", p.git("rev-parse", "s^{commit}")[:10]]
    assert row.endswith("  template")  # the commit's subject
    assert next(r for r in rows if r.startswith("ghost ")).split()[:3] == ["ghost", "1", "0"]
    assert aligned(listing)

    assert per_run[0].split() == ["RUN", "STATUS", "PROGRESS", "CHECKPOINT", "BEST", "DURATION", "OVERRIDES"]
    assert per_run[1].split()[:5] == ["s/0", "finished", "2/2", "2", "val/acc"]
    assert per_run[1].endswith("  epochs=2") and len(per_run) == 2
    assert aligned(per_run)
    assert ghostly[1].split()[:4] == ["ghost/0", "dead", "7/30", "4"]


def aligned(lines):
    """Every column starts where its header does, after a space."""
    starts = [i for i, c in enumerate(lines[0]) if c != " " and (i == 0 or lines[0][i - 1] == " ")]
    return all(line[i] != " " and (i == 0 or line[i - 1] == " ") for line in lines for i in starts)


# ---- messages -------------------------------------------------------------------------------

@pytest.mark.parametrize("verb, shell_name", [("continue", "con"), ("con", "con"), ("diff", "expdiff")])
def test_hints_and_usage_name_the_shell_commands(with_runs, verb, shell_name):
    """`continue` is bash's builtin and `diff` is diff(1): a hint naming them sends the user astray."""
    out = with_runs.cli(verb, "--bogus")
    lines = out.stderr.splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert f"see `{shell_name} --help`" in lines[0] and lines[0].startswith(f"runtag: {shell_name}: ")
    assert with_runs.cli(verb, "--help").stdout.startswith(f"usage: {shell_name} ")


def test_run_without_arguments_asks_for_the_tag_only(with_runs):
    out = with_runs.cli("run")
    lines = out.stderr.splitlines()
    assert out.returncode == 2 and len(lines) == 1
    assert "required: tag —" in lines[0] and "key=value" not in lines[0]


def test_run_m_with_nothing_to_commit_says_so_and_tags_head(project):
    head = project.git("rev-parse", "HEAD")
    out = ok(project.cli("run", "-m", "a change I forgot to make", "same", "epochs=1"))
    assert f"nothing to commit under code/; -m ignored, tagging HEAD {head[:10]}" in out.stdout
    assert project.git("rev-parse", "HEAD") == head == project.git("rev-parse", "same^{commit}")
