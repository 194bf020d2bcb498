"""trashed: what __result__/.trash holds: its entries (`<time>_<tag>_<id>_<pid>/` with
`trash.json` and the run as `run/`), the second half of a removal or an undo (the list lines,
the tag), and settle(), which finishes what a kill cut short (trash.py: the verb)."""
import json
import shutil

from utils import atomic, gitrepo, paths, runs
from utils.housekeeping import listed

MANIFEST, RUN, PURGING = "trash.json", "run", ".purging-"


def finish_out(entry, manifest):
    listed.take_out(manifest["name"], manifest["lists"])
    atomic.write_json(entry / MANIFEST, {**manifest, "lists_done": True})


def finish_back(entry, manifest):
    target = runs.Run.parse(manifest["undo_to"])
    if str(target) != manifest["name"]:  # renumbered: the record names its new id
        record = target.read()
        if record and record.get("id") != target.id:
            target.write({**record, "id": target.id, "renumbered_from": manifest["name"]})
    listed.put_back(str(target), manifest["lists"])
    repo = gitrepo.open_repo()
    if manifest.get("tag_commit") and not gitrepo.tag_commit(repo, target.tag):
        repo.git.tag(target.tag, manifest["tag_commit"])  # `rm --tag` deleted it
    shutil.rmtree(entry)
    return target


def trash():
    base = paths.results() / ".trash"
    base.mkdir(parents=True, exist_ok=True)
    return base


def entries():
    """[(entry folder, manifest)] of the runs in the trash, oldest first."""
    base = paths.results() / ".trash"
    found = []
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        if not entry.name.startswith(".") and (entry / RUN).is_dir():
            found.append((entry, manifest_of(entry)))
    return [(e, m) for e, m in found if m]


def manifest_of(entry):
    """The entry's trash.json, or None when it is missing or damaged."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("name"), str) else None


def settle():
    """What a kill left between the steps: a half-made or purged entry goes, an undo or a removal
    whose list lines were not yet edited is finished."""
    base = paths.results() / ".trash"
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        if not entry.is_dir() or entry.is_symlink():
            continue
        manifest = manifest_of(entry)
        if entry.name.startswith((".new-", PURGING)) or not manifest:
            shutil.rmtree(entry, ignore_errors=True)
        elif manifest.get("undo_to") and not (entry / RUN).exists():
            finish_back(entry, manifest)
        elif manifest.get("undo_to"):  # killed before its rename: the folder it had claimed goes
            claimed = runs.Run.parse(manifest["undo_to"]).dir
            if claimed.is_dir() and not any(claimed.iterdir()):
                claimed.rmdir()
        elif not (entry / RUN).exists():
            shutil.rmtree(entry, ignore_errors=True)
        elif not manifest.get("lists_done"):
            finish_out(entry, manifest)
