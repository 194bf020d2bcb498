"""import (shell expimport): runs made in another clone (another machine) merged into this one.

The source is another clone's root, a __result__ folder, or an archive (archive.unpack). Each run
comes in whole (staging.py): copied into the staging area, its record given its id here and
`imported_from` (its first name, host and the root it came from), fsynced, renamed into place. A
run already here (the same first name, host and start) is not brought twice. Then git: the tags
and commits the runs name, fetched from `--from REPO` into refs/tags/<tag> (a tag not here) or,
where a tag here marks another commit and so is left as it is, the commit into
refs/runtag/imported/<sha>, which keeps it from git's gc; without --from the missing ones are
named in one line. Only refs are added: never the working tree, index, branch or stash.
"""
import os
import sys
from pathlib import Path

import git

from utils import gitrepo, paths, runlock, runs
from utils.errors import UserError
from utils.housekeeping import archive, carried, staging

KEPT = "refs/runtag/imported/"  # commits of imported runs whose tag here marks another commit


def add_import_runs(p):
    p.add_argument("source", metavar="FOLDER|ARCHIVE",
                   help="another clone's root, its __result__ folder, or an archive that exparchive wrote")
    p.add_argument("--from", dest="repo", metavar="REPO",
                   help="a git repository (path or URL) to fetch the runs' tags and commits from")


def import_runs(args):
    repo = gitrepo.open_repo()
    remote = reachable(args.repo) if args.repo else None
    if not os.path.exists(args.source):
        raise UserError(f"no file or folder {args.source}",
                        "give another clone's root, its __result__ folder, or an archive exparchive wrote")
    if os.path.isdir(args.source):
        arrivals = from_folder(results_of(args.source))
    else:
        arrivals = archive.unpack(args.source, always=True)
    arrivals.told("imported")
    commits(repo, remote, arrivals.seen)
    return 0


def reachable(where):
    """--from's repository, checked before anything is imported (a path made absolute)."""
    where = os.path.abspath(where) if os.path.exists(where) else where
    try:
        git.Git().ls_remote("--quiet", where, "HEAD")
    except git.GitCommandError:
        raise UserError(f"{where} is not a git repository git can fetch from",
                        "give --from the other clone's path or URL") from None
    return where


def results_of(source):
    """The __result__ folder a source names: a clone's, or the folder itself when it holds runs."""
    folder = Path(source).resolve()
    if (folder / "__result__").is_dir():
        folder = (folder / "__result__").resolve()
    elif not any(folder.glob(f"*/[0-9]*/{runs.RECORD}")):
        raise UserError(f"{source} holds no runs (no __result__/<tag>/<id>/)",
                        "give another clone's root, its __result__ folder, or an archive exparchive wrote")
    if folder == paths.results():
        raise UserError(f"{source} is this project's own __result__", "give another clone's root")
    return folder


def from_folder(results):
    """Every run of another __result__ brought in whole."""
    arrivals = staging.Arrivals()
    came_from = {"root": str(results.parent)}
    found = scan(results)
    with staging.area() as base:
        for folder, record in found:
            staged = None
            if arrivals.here(record) is None:  # only what is not here is copied
                staged = staging.stage(base)
                carried.copy(folder, staged)
            arrivals.bring(staged, record, came_from, always=True)
    return arrivals


def scan(results):
    """(folder, record) of each run of a __result__, by tag and id; a damaged or live one said and left."""
    found = []
    for tag in sorted(paths.subfolders(results)):  # hidden ones (.trash, .import-tmp) are no runs
        base = results / tag
        for id in sorted(int(name) for name in os.listdir(base) if runs.is_id(name)):
            folder, name = base / str(id), str(runs.Run(tag, id))
            record = runs.load(str(folder / runs.RECORD), name, quiet=True)
            if record is None:
                print(f"runtag: warning: the record of {name} in {results} is missing or damaged — skipped", file=sys.stderr)
            elif runlock.locked(folder):
                print(f"runtag: warning: {name} in {results} is running right now — skipped; import again once it ended",
                      file=sys.stderr)
            else:
                found.append((folder, record))
    return found


def commits(repo, remote, records):
    """The tags and commits the runs name: fetched from `remote`, and the missing ones named."""
    wanted = {}
    for record in records:
        if record.get("commit"):
            wanted.setdefault(record["tag"], set()).add(record["commit"])
    if remote:
        fetched = [tag for tag in sorted(wanted) if gitrepo.tag_commit(repo, tag) is None
                   and fetch(repo, remote, f"refs/tags/{tag}:refs/tags/{tag}")]
        if fetched:
            print(f"runtag: fetched tag{'s' * (len(fetched) > 1)} {', '.join(fetched)} from {remote}")
    missing = [(tag, commit) for tag, found in sorted(wanted.items()) for commit in sorted(found) if not present(repo, commit)]
    for tag, commit in missing if remote else []:
        if fetch(repo, remote, f"{commit}:{KEPT}{commit}"):
            marked = gitrepo.tag_commit(repo, tag)
            why = f"tag {tag} here marks {marked[:10]} and is left as it is" if marked else f"{remote} has no tag {tag}"
            print(f"runtag: commit {commit[:10]} of the imported runs of {tag} fetched into {KEPT}{commit[:10]}... ({why})")
    missing = [(tag, commit) for tag, commit in missing if not present(repo, commit)]
    if missing:
        named = ", ".join(f"{commit[:10]} (tag {tag})" for tag, commit in missing)
        todo = (f"{remote} does not have them either: fetch them from the clone that made the runs" if remote else
                "import again with --from REPO (the other clone) to fetch them; the runs are imported")
        print(f"runtag: commits not in this repository: {named} — {todo}", file=sys.stderr)


def present(repo, commit):
    try:
        repo.git.cat_file("-e", f"{commit}^{{commit}}")
        return True
    except git.GitCommandError:
        return False


def fetch(repo, remote, refspec):
    """One git fetch of one refspec (refs only: no working tree, index or branch); True if it did."""
    try:
        repo.git.fetch("--quiet", "--no-tags", "--no-write-fetch-head", remote, refspec)
        return True
    except git.GitCommandError:
        return False
