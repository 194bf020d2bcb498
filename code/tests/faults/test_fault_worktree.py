"""Issue 12 C: `con`/`rerun` remove the worktrees that killed ones left under
__result__/.worktrees/, but never one that a live process still works in: a main.py orphaned by
a SIGKILL of its launcher goes on running from it after the pid in the folder's name is gone."""
import subprocess

from conftest import PYTHON, leftover_worktree, ok


def worktrees(project):
    return [line.split()[0] for line in project.git("worktree", "list").splitlines()[1:]]


def test_a_leftover_worktree_in_use_stays_until_its_process_ends(project):
    ok(project.cli("run", "-f", "w", "epochs=1"))
    project.commit("README.md", "moved on\n", "a later commit")  # HEAD past w: rerun needs a worktree
    as_cwd, in_argv, unused = (leftover_worktree(project, s) for s in ("cwd1", "argv", "none"))
    (in_argv / "hold.py").write_text("import time\ntime.sleep(120)\n")
    users = [subprocess.Popen(["sleep", "120"], cwd=as_cwd),              # works in it
             subprocess.Popen([PYTHON, str(in_argv / "hold.py")], cwd="/")]  # runs a file of it
    try:
        ok(project.cli("rerun", "w"))
        assert as_cwd.is_dir() and in_argv.is_dir() and not unused.exists()
        assert sorted(worktrees(project)) == sorted(map(str, (as_cwd, in_argv)))  # its own removed too
    finally:
        for user in users:
            user.kill()
            user.wait()
    ok(project.cli("rerun", "w"))
    assert not as_cwd.exists() and not in_argv.exists() and worktrees(project) == []
    assert [project.record("w", i)["status"] for i in (1, 2)] == ["finished", "finished"]
