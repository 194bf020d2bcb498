"""Git, read mostly: tags, the dirty check, worktrees. Never the user's tree, index, branch or stash."""
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager

import git

from utils import paths, runs
from utils.errors import UserError


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


def check_tag_name(tag):
    """A name git accepts for a tag, and one folder under __result__: no `/`. No `,` either:
    TensorBoard's --logdir_spec and the experiment lists separate names with it. A leading
    `_` is ours (`_debug`), a leading `.` hidden, a leading `-` an option."""
    ok = tag and not set(tag) & set("/,") and not tag.startswith(("-", ".", "_")) and subprocess.run(
        ["git", "check-ref-format", f"refs/tags/{tag}"], capture_output=True).returncode == 0
    if not ok:
        raise UserError(f"invalid tag name {tag!r}",
                        "use letters, digits, - and . (no / , spaces, .., ~^:?*[ or a leading . _ -)")


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
    """Tag HEAD; a tag already on HEAD is reused (a repeat); one on another commit is refused."""
    marked = tag_commit(repo, tag)
    if marked is None:
        try:
            repo.git.tag("-a", tag, "-m", f"runtag: {tag}", head)
            return
        except git.GitCommandError:  # a concurrent `run` of the same tag made it first
            marked = tag_commit(repo, tag)
            if marked is None:
                raise
    if marked != head:
        raise UserError(f"tag {tag!r} already marks commit {marked[:10]}, not this one",
                        f"`rerun {tag}` to run that commit again, or choose a new tag")


def require_commit(repo, commit, name):
    """The commit a run was made from must still exist to run it again."""
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
    """Worktrees of a `con`/`rerun` that was killed: their folder names a pid of this host that is gone."""
    for d in base.iterdir():
        _, pid, rest = (d.name.split(".", 2) + ["", ""])[:3]
        if pid.isdigit() and rest.rsplit(".", 1)[0] == socket.gethostname() and not runs.alive(int(pid)):
            remove_worktree(repo, d)
