"""Git, read mostly: tags, the dirty check, worktrees. Never the user's tree, index, branch or stash."""
import os
import re
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import git

from utils import paths, process
from utils.errors import UserError, shown


def open_repo():
    try:
        repo = git.Repo(paths.root())
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UserError(f"{paths.root()} is not a git repository", "run `git init` and commit your code first")
    if not repo.head.is_valid():
        raise UserError("the repository has no commit yet", "commit your code first: git add -A && git commit -m init")
    return repo


def require_identity(repo):
    """An annotated tag has a tagger: without user.name/user.email git would refuse half-way,
    or sign with a guess from the host name, which nobody could trace back."""
    try:
        repo.git.var("GIT_COMMITTER_IDENT")
        email = os.environ.get("GIT_COMMITTER_EMAIL") or os.environ.get("EMAIL") or repo.git.config("user.email")
    except git.GitCommandError:
        email = None
    if not email:
        raise UserError("git has no identity to sign the tag with",
                        'set one: git config user.name "You" && git config user.email you@example.com')


TAG = re.compile(r"[A-Za-z0-9+][A-Za-z0-9._+-]{0,99}")  # ASCII (\w would take any script); no `=`: `run epochs=3`
TAG_CHARS = "at most 100 of A-Z a-z 0-9 - _ . +, not starting with - . _, without .., not ending in . or .lock"
PSEUDO_REF = re.compile(r"(?i:head)|[A-Z_]+_HEAD")  # `head` is HEAD on a case-insensitive disk
COMMIT_ID = re.compile(r"[0-9a-fA-F]{4,40}")  # git takes 4 hex digits or more as an abbreviated id


def check_tag_name(tag):
    """A tag is also a folder under __result__, a word in the shell lines we print (`rerun TAG`)
    and a name in git's revision syntax: only characters that mean nothing to a shell or to git.
    `t$(cmd)` pasted into a shell would run cmd. No `/`, no `,` either: TensorBoard's
    --logdir_spec and the experiment lists separate names with it. A leading `_` is ours
    (`_debug`), a leading `.` hidden, a leading `-` an option; 100 characters stay far from the
    file system's 255 bytes. A name git resolves to something else (first) is refused too."""
    if not TAG.fullmatch(tag) or ".." in tag or tag.endswith((".", ".lock")):
        raise UserError(f"invalid tag name {shown(tag)}", f"use {TAG_CHARS}")
    reason = ("git reserves it" if PSEUDO_REF.fullmatch(tag) else
              "git reads it as a commit id" if COMMIT_ID.fullmatch(tag) else
              f"git reads it as {ref}" if (ref := other_ref(tag)) else None)
    if reason:
        raise UserError(f"invalid tag name {tag!r}: {reason}", "choose another name: git would mix the two up")


def other_ref(name):
    """The ref git reads `name` as when it is not our tag: `refs/heads/name` (a branch),
    `refs/stash`, ...; '' for none, or outside a repository."""
    out = subprocess.run(["git", "rev-parse", "--verify", "-q", "--symbolic-full-name", name], cwd=paths.root(),
                         capture_output=True, text=True)
    ref = out.stdout.strip() if out.returncode == 0 else ""
    return "" if ref == f"refs/tags/{name}" else ref


def ready(tag):
    """What `run` and `sweep` check before they write anything: a repository with a commit, a
    safe tag name, an identity to sign the tag with. Returns (repo, changed files under code/)."""
    repo = open_repo()
    check_tag_name(tag)
    require_identity(repo)
    return repo, dirty_code(repo)


def refuse_dirty(dirty, todo):
    if dirty:
        raise UserError(f"code/ has uncommitted changes: {' '.join(dirty[:5])}{' ...' if len(dirty) > 5 else ''}", todo)


def dirty_code(repo):
    """Changed or untracked files under code/, as `git status` names them."""
    out = repo.git.status("--porcelain", "--untracked-files=all", "--", "code")
    return [line[3:] for line in out.splitlines()]


def commit_code(repo, message):
    """`run -m MSG`: the user asked for this commit of code/ and nothing else."""
    repo.git.add("--all", "--", "code")
    repo.git.commit("-m", message, "--", "code")


def tag_commit(repo, tag):
    """The commit a tag marks, or None."""
    try:
        return repo.git.rev_parse("--verify", "-q", f"refs/tags/{tag}^{{commit}}")
    except git.GitCommandError:
        return None


def ensure_tag(repo, tag, head):
    """Tag HEAD; a tag already on HEAD is reused (a repeat); one on another commit is refused.
    True when this call made the tag (delete_tag undoes it when the start fails)."""
    marked = tag_commit(repo, tag)
    if marked is None:
        try:
            repo.git.tag("-a", tag, "-m", f"runtag: {tag}", head)
            return True
        except git.GitCommandError:  # a concurrent `run` of the same tag made it first
            marked = tag_commit(repo, tag)
            if marked is None:
                raise
    if marked != head:
        raise UserError(f"tag {tag!r} already marks commit {marked[:10]}, not this one",
                        f"`rerun {tag}` to run that commit again, or choose a new tag")
    return False


def delete_tag(repo, tag):
    """Take back a tag this command made for a run that never started; quietly, as the failure
    that made it necessary is what the user is told."""
    try:
        repo.git.tag("-d", tag)
    except git.GitCommandError:
        pass


def require_commit(repo, commit, name):
    """The commit a run was made from must still exist to run it again."""
    if not commit:  # a record of a run made outside git (main.py by hand) names none
        raise UserError(f"{name} records no commit to run again", "start a new run with `run <tag>`")
    try:
        repo.git.cat_file("-e", f"{commit}^{{commit}}")
    except git.GitCommandError:
        raise UserError(f"commit {commit[:10]} of {name} is not in this repository",
                        "fetch it, or restore the tag, then try again")


def commit_subject(repo, rev):
    return repo.git.log("-1", "--format=%s", rev)


@contextmanager
def checkout_of(repo, commit):
    """A directory holding `commit`: the user's own checkout when it is HEAD with code/ clean,
    otherwise a temporary `git worktree`, removed afterwards."""
    if repo.head.commit.hexsha == commit and not dirty_code(repo):
        yield paths.root()
        return
    base = paths.results() / ".worktrees"
    base.mkdir(parents=True, exist_ok=True)
    remove_orphans(repo, base)
    where = tempfile.mkdtemp(prefix=f"{commit[:10]}.{os.getpid()}.{socket.gethostname()}.", dir=base)
    try:
        repo.git.worktree("add", "--detach", where, commit)
        yield paths.Path(where)
    finally:
        remove_worktree(repo, where)


def remove_worktree(repo, where):
    try:
        repo.git.worktree("remove", "--force", str(where))
    except git.GitCommandError:  # never added, or its folder already gone
        pass
    shutil.rmtree(where, ignore_errors=True)
    repo.git.worktree("prune")


def remove_orphans(repo, base):
    """Worktrees of a `con`/`rerun` that was killed: their folder names a pid of this host that is
    gone. Its run may not be: a main.py orphaned by a SIGKILL of its launcher goes on from the
    worktree, so one that a live process works in (its cwd, or a path in its command line) stays."""
    leftovers = [d for d in base.iterdir() if owner_gone(d.name)]
    words = process_paths() if leftovers else []
    for d in leftovers:
        if not in_use(d, words):
            remove_worktree(repo, d)


def owner_gone(name):
    """Whether a worktree's name, `<commit>.<pid>.<host>.<random>`, is of a pid of this host that is gone."""
    _, pid, rest = (name.split(".", 2) + ["", ""])[:3]
    return pid.isascii() and pid.isdigit() and len(pid) < 10 and rest.rsplit(".", 1)[0] == socket.gethostname() \
        and not process.alive(int(pid))  # < 10 digits: os.kill() of a larger number overflows


def in_use(folder, words):
    """Whether one of the words is the folder or a path inside it (not merely one that starts alike)."""
    under = re.compile("|".join(re.escape(str(p)) + "(/|$)" for p in {folder, Path(os.path.realpath(folder))}))
    return any(under.search(word) for word in words)


def process_paths():
    """The working directory and command-line words of every process of this host we may read.
    Without /proc (not Linux) nothing can be told: the pid in the name decides alone."""
    words = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            words.append(os.readlink(proc / "cwd"))
        except OSError:  # gone meanwhile, or another user's
            pass
        try:
            words += (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            pass
    return words
