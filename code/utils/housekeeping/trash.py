"""trash: `rm` (shell: exprm), runs removed into __result__/.trash/, `rm --undo` brings one back,
`rm --purge` empties the trash.

A run moves whole, by one rename(2) of its folder into its trash entry (the same file system), so
at every moment it is either in __result__ or in the trash, never half of each. An entry is
`.trash/<time>_<tag>_<id>/` with `trash.json` (the run's name, its lines in every experiment list,
its tag's commit) and the run as `run/`. The steps around the rename (the entry made, the list
lines taken out; for an undo, put back) are redone by the next `rm` when a kill cut them short
(settle()). A purge renames an entry to `.purging-...` before it deletes it.
"""
import os
import shutil
import sys
import time

from utils import atomic, gitrepo, paths, runlock, runs
from utils.errors import UserError
from utils.housekeeping import listed
from utils.housekeeping.trashed import MANIFEST, RUN, PURGING, entries, finish_back, finish_out, settle, trash
from utils.housekeeping.usage import human, tree



def add_remove(p):
    p.add_argument("specs", nargs="*", metavar="TAG[/ID]", help="the runs to remove (a tag: all its runs)")
    p.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    p.add_argument("--tag", action="store_true", help="delete the git tag too once no run of it remains")
    p.add_argument("--undo", metavar="TAG[/ID]", help="bring a removed run back (a tag: all of its in the trash)")
    p.add_argument("--purge", action="store_true", help="empty __result__/.trash for good")
    p.add_argument("--list", action="store_true", help="what the trash holds")


def remove(args):
    with atomic.locked(trash()):  # one rm at a time: settle() must not take another's entry for a killed one
        settle()
        return removing(args)


def removing(args):
    if sum(map(bool, (args.specs, args.undo, args.purge, args.list))) != 1:
        raise UserError("rm takes runs, or one of --undo RUN, --purge, --list", "e.g. `rm big/0`, `rm --undo big/0`")
    if args.list:
        return show(entries())
    if args.purge:
        return purge(args.yes)
    if args.undo:
        return undo(args.undo)
    found = checked(runs.resolve(args.specs))
    for run in found:
        print(f"  {run}  {human(tree(run.dir))}  in lists: {', '.join(listed.places(str(run))) or '-'}")
    confirm(f"remove these {len(found)} runs into __result__/.trash", args.yes)
    for run in found:
        move_out(run)
        print(f"runtag: removed {run} (`rm --undo {run}` brings it back)", flush=True)
    if args.tag:
        untag({run.tag for run in found})
    return 0


def checked(found):
    """Every run, before any is moved: not live here or elsewhere, not waiting in the queue."""
    for run in found:
        record = run.read() or {}
        status = runs.status(record) if record else None
        if runlock.locked(run.dir) or status == "running":
            raise UserError(f"{run} is running ({record.get('host') or 'this host'})", "stop it first, or leave it")
        if status in ("queued", "pending"):
            raise UserError(f"{run} waits to start ({status})", f"`queue rm {run}` (or scancel its job) first")
    return found


def confirm(question, yes):
    if yes:
        return
    if not sys.stdin.isatty():
        raise UserError(f"{question}: no terminal to ask", "add --yes")
    if input(f"{question}? [y/N] ").strip().lower() not in ("y", "yes"):
        raise UserError("nothing removed", "answer y to remove")


def move_out(run):
    """The entry with its manifest first, then the run's folder renamed into it, then its list lines."""
    runlock.acquire(run.dir, str(run))  # no `con` starts it while it moves
    try:
        base = trash()
        name = f"{time.strftime('%Y%m%dT%H%M%S')}_{run.tag}_{run.id}_{os.getpid()}"
        staging = base / f".new-{name}"
        staging.mkdir()
        manifest = {"name": str(run), "removed": runs.now(), "lists": listed.places(str(run)),
                    "tag_commit": gitrepo.tag_commit(gitrepo.open_repo(), run.tag), "lists_done": False}
        atomic.write_json(staging / MANIFEST, manifest)
        os.rename(staging, base / name)
        os.rename(run.dir, base / name / RUN)
    finally:
        runlock.release(run.dir)
    finish_out(base / name, manifest)
    tidy_tag(run.tag)


def undo(spec):
    tag, _, id = spec.partition("/")
    chosen = [(e, m) for e, m in entries() if m["name"] == spec or (not id and m["name"].split("/")[0] == tag)]
    if not chosen:
        raise UserError(f"no removed run {spec!r} in __result__/.trash", "see `rm --list`")
    if id:
        chosen = chosen[-1:]  # the newest removal of that name
    for entry, manifest in chosen:
        print(f"runtag: {manifest['name']} back as {bring_back(entry, manifest)}", flush=True)
    return 0


def bring_back(entry, manifest):
    """The run renamed back (under its old id if free, else the tag's next free one), its list lines
    and its tag put back; the entry goes last."""
    tag, id = manifest["name"].split("/")
    target = runs.Run(tag, int(id))
    (paths.results() / tag).mkdir(parents=True, exist_ok=True)
    if os.path.lexists(target.dir):
        target = runs.Run(tag, runs.allocate(tag))  # an empty folder of its own: rename(2) replaces it
    atomic.write_json(entry / MANIFEST, {**manifest, "undo_to": str(target)})
    os.rename(entry / RUN, target.dir)
    return finish_back(entry, {**manifest, "undo_to": str(target)})


def untag(tags):
    repo = gitrepo.open_repo()
    for tag in sorted(tags):
        if not runs.ids(tag) and gitrepo.tag_commit(repo, tag):
            gitrepo.delete_tag(repo, tag)
            print(f"runtag: git tag {tag} deleted (no run of it remains; `rm --undo {tag}` puts it back)")


def tidy_tag(tag):
    """A tag folder left without runs goes (its listing summary with it), so `expls` forgets it."""
    folder = paths.results() / tag
    if not runs.ids(tag):
        (folder / runs.SUMMARY).unlink(missing_ok=True)
        try:
            folder.rmdir()
        except OSError:
            pass  # something else of the user's in it: it stays


def purge(yes):
    found = entries()
    size = sum(tree(entry) for entry, _ in found)
    confirm(f"delete the {len(found)} runs in __result__/.trash ({human(size)}) for good", yes or not found)
    for entry, _ in found:
        doomed = entry.with_name(PURGING + entry.name)
        os.rename(entry, doomed)
        shutil.rmtree(doomed)
    print(f"runtag: trash emptied: {len(found)} runs, {human(size)} freed")
    return 0


def show(found):
    for entry, manifest in found:
        print(f"  {manifest['name']}  removed {manifest['removed']}  {human(tree(entry))}")
    print(f"runtag: {len(found)} removed runs in __result__/.trash")
    return 0
