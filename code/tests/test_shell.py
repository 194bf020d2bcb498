"""code/source.sh in real bash and zsh: the commands, `continue` left alone, the virtualenv,
any directory of the repository, tab completion, and no compinit question."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import need_program, watched

SHELLS = ["bash", "zsh"]
COMMANDS = "run con rerun re record title table itb expls expels sweep plot expdiff".split()


@pytest.fixture(scope="module")
def one_run(shared_project):
    out = shared_project.cli("run", "-f", "alpha", "epochs=1", check=True)
    assert "alpha/0" in out.stdout
    return shared_project


@pytest.mark.parametrize("shell", SHELLS)
def test_defines_every_command_as_a_function_and_not_continue(shared_project, shell):
    if shell == "bash":
        script = f"for c in {' '.join(COMMANDS)}; do type -t $c; done; type -t continue"
    else:
        script = f"for c in {' '.join(COMMANDS)}; do whence -w $c; done; whence -w continue"
    out = shared_project.sh(script, shell=shell)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    kinds = out.stdout.split()
    if shell == "bash":
        assert kinds == ["function"] * len(COMMANDS) + ["builtin"]
    else:
        assert kinds[1::2] == ["function"] * len(COMMANDS) + [kinds[-1]]
        assert kinds[-1] in ("reserved", "builtin")
    # and `continue` still works in a loop
    loop = shared_project.sh("for i in 1 2 3; do [ $i = 2 ] && continue; echo $i; done", shell=shell)
    assert loop.stdout.split() == ["1", "3"]


def test_type_continue_is_builtin_in_bash(shared_project):
    assert shared_project.sh("type continue", shell="bash").stdout.strip() == "continue is a shell builtin"


@pytest.mark.parametrize("shell", SHELLS)
def test_works_from_any_directory_of_the_repository(one_run, shell):
    """Sourced by a relative path from code/utils, then used from another directory."""
    need_program(shell)
    script = "cd code/utils && . ../source.sh && cd ../tests && expels alpha"
    out = subprocess.run([shell, "-c", script], cwd=one_run.root, capture_output=True, text=True, env=one_run.env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1].split()[:3] == ["alpha/0", "finished", "1/1"]


@pytest.mark.parametrize("shell", SHELLS)
def test_activates_the_projects_virtualenv(project, shell):
    """The README's set-up makes .venv at the root; sourcing activates it (its python runs the CLI)."""
    venv = project.root / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").symlink_to(sys.executable)
    (venv / "bin/activate").write_text(f'VIRTUAL_ENV="{venv}"\nexport VIRTUAL_ENV\n'
                                       'PATH="$VIRTUAL_ENV/bin:$PATH"\nexport PATH\n')
    out = project.sh('echo "$VIRTUAL_ENV"; command -v python; expls', shell=shell)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == str(venv) and lines[1] == str(venv / "bin/python")
    assert lines[2].split()[0] == "TAG"


@pytest.fixture
def unfinished_and_a_list(one_run):
    """beta/0, an interrupted run beside the finished alpha/0, and the list `mine`."""
    beta = one_run.root / "__result__/beta/0"
    beta.mkdir(parents=True)
    (beta / "statistic.json").write_text(json.dumps({**one_run.record("alpha", 0), "tag": "beta",
                                                     "status": "interrupted"}))
    lists = one_run.root / "__statistic__/exper-list"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "mine.txt").write_text("alpha/0\n")
    yield one_run
    shutil.rmtree(beta.parent)
    (lists / "mine.txt").unlink()


@pytest.mark.parametrize("shell", SHELLS)
def test_tab_completion_offers_options_tags_and_runs(unfinished_and_a_list, shell):
    one_run = unfinished_and_a_list
    # the completion function as bash (and zsh's bashcompinit) call it: command, word, previous word
    script = ('_runtag_complete con "" con; echo "${COMPREPLY[*]}"\n'
              '_runtag_complete rerun --n rerun; echo "${COMPREPLY[*]}"\n'
              '_runtag_complete expels al expels; echo "${COMPREPLY[*]}"\n'
              '_runtag_complete run al --from; echo "${COMPREPLY[*]}"\n'
              '_runtag_complete rerun "" rerun; echo "${COMPREPLY[*]}"\n'
              '_runtag_complete table "" table; echo "${COMPREPLY[*]}"\n'
              '_runtag_complete title m title; echo "${COMPREPLY[*]}"\n')
    script += "complete -p run title\n" if shell == "bash" else "print -r -- $_comps[run]; print -r -- $_comps[title]\n"
    out = one_run.sh(script, shell=shell)
    assert out.returncode == 0, out.stderr
    con, rerun_opts, expels, from_, rerun, table, title, *registered = out.stdout.splitlines()

    def offered(line, word):  # zsh filters the words by what was typed itself, bash in compgen
        return [w for w in line.split() if w.startswith(word)]
    assert con.split() == ["beta", "beta/0"]  # alpha/0 is finished: `con` would refuse it
    assert rerun.split() == ["alpha", "alpha/0", "beta", "beta/0"]
    assert table.split() == ["finished", "mine"]  # finished.txt: kept by the runs
    assert offered(title, "m") == ["mine"]
    assert "--nproc" in rerun_opts.split()
    if shell == "bash":  # zsh filters the words itself
        assert all(w.startswith("--n") for w in rerun_opts.split())
    assert offered(expels, "al") == ["alpha"]
    assert offered(from_, "al") == ["alpha", "alpha/0"]
    assert len(registered) == 2 and all("_runtag_complete" in line for line in registered)


def test_zsh_sourcing_does_not_prompt_even_with_insecure_function_dirs(project, tmp_path):
    """compinit asks about world-writable fpath entries; sourcing must never stop to ask."""
    insecure = tmp_path / "functions"
    insecure.mkdir()
    os.chmod(insecure, 0o777)
    need_program("zsh")
    script = f"fpath=({insecure} $fpath)\n. code/source.sh\nprint -r -- ${{+functions[compdef]}} $_comps[expels]"
    out = watched(["zsh", "-c", script], cwd=project.root, env=project.env(), stdin=subprocess.DEVNULL)
    assert out.returncode == 0 and "insecure" not in out.stdout + out.stderr, out.stdout + out.stderr
    assert out.stdout.split()[0] == "1" and "_runtag_complete" in out.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_sourcing_replaces_aliases_of_the_same_name_and_survives_set_e(project, shell):
    aliases = "shopt -s expand_aliases; " if shell == "bash" else ""
    need_program(shell)
    script = f"set -e; {aliases}alias run='echo alias'; alias re='echo alias'\n. code/source.sh\nrun --help"
    out = subprocess.run([shell, "-c", script], cwd=project.root, capture_output=True, text=True, env=project.env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: run ") and "alias" not in out.stdout
