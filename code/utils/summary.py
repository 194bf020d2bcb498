"""What `expls` needs of each run of a tag (the record's status and commit, or why it is damaged),
kept in __result__/<tag>/.expls.json so that listing 10,000 runs stats their records instead of
parsing them (code/bench/bench_listing.py). A cache, never a source: delete it at will.

Never stale. An entry is used only while its statistic.json has the inode, size, mtime and ctime
it had when it was read: every write changes the ctime, which no user can set. And only entries of
files last changed before the listing that read them made its summary's temporary file are kept:
a write in the same tick of the file system's clock as the read could leave the stat unchanged;
one after it cannot. Both times come from the same file system (a record on another device is
never kept). The verdict on a damaged record is kept with it, so a listing warns as a full read
does; a changed schema.py (a newer runtag) starts afresh. A summary that cannot be written (a
read-only or full disk) is no error: the records are read as before.
"""
import json
import os
import zlib

from utils import paths, runs, schema

FORMAT = 1  # of the file; with schema.py's checksum, the summary's "version"
_VERSION = []


def version():
    """This runtag's verdicts: the format and a checksum of the rules records are judged by."""
    if not _VERSION:
        with open(schema.__file__, "rb") as f:
            _VERSION.append(f"{FORMAT}:{zlib.crc32(f.read()):08x}")
    return _VERSION[0]


def read(tag, found):
    """[(run, (status, commit) or None)] of a tag's runs (Runs of that tag), as runs.records would
    read them: None for a missing or damaged record, with the same warnings on stderr."""
    base = f"{paths.results()}/{tag}"
    kept = Summary(f"{base}/{runs.SUMMARY}")
    try:
        out = [(run, kept.entry(f"{base}/{run.id}/{runs.RECORD}", run)) for run in found]
    except BaseException:  # Ctrl-C, `expls | head`: no temporary file left behind
        kept.discard()
        raise
    kept.save()
    return out


class Summary:
    def __init__(self, path):
        self.path, self.tmp, self.fd, self.since, self.dev = path, None, None, None, None
        self.old = loaded(path)
        self.new = {}

    def entry(self, path, run):
        name, key = str(run), str(run.id)
        try:
            st = os.stat(path)
        except OSError:  # missing (None, as load says) or unreadable (load warns): nothing to keep
            return shown(schema.load(path, name))
        stat = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev]
        hit = self.old.get(key)
        if type(hit) is list and len(hit) == 9 and hit[:5] == stat:
            self.new[key] = hit
            status, commit, why, warned = hit[5:]
            if why is None:
                return status, commit
            schema.damaged(path, name, why, quiet=not warned)  # the same words as the first time
            return None
        self.start()
        schema.DAMAGED.pop(name, None)  # what an earlier command in this process said (tests call cli.main)
        record = schema.load(path, name)
        why = schema.DAMAGED.get(name) if record is None else None
        if record is None and why is None:  # gone between the stat and the read
            return None
        if self.since is not None and st.st_ctime_ns < self.since and st.st_dev == self.dev:
            self.new[key] = stat + list(shown(record) or (None, None)) + [why, path in paths.SAID]
        return shown(record)

    def start(self):
        """Make the temporary file the summary is written through, once: its ctime is the file
        system's `now`, before any record this listing reads is read."""
        if self.tmp is not None:
            return
        self.tmp = f"{self.path}.{os.urandom(6).hex()}.tmp"
        try:
            self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError:  # a read-only or full folder: no summary this time
            self.tmp = ""
            return
        st = os.fstat(self.fd)
        self.since, self.dev = st.st_ctime_ns, st.st_dev

    def save(self):
        """Replace the summary when what it should say changed. No fsync: a summary a crash tore
        does not parse, and reads as none."""
        if self.new != self.old:
            self.start()
        if not self.tmp:
            return
        try:
            if self.new != self.old:
                data = json.dumps({"version": version(), "runs": self.new}, separators=(",", ":")).encode()
                if os.write(self.fd, data) != len(data):  # a few KB: one write, unless the disk is full
                    raise OSError("short write")
                os.close(self.fd)
                self.fd = None
                os.replace(self.tmp, self.path)
        except OSError:
            pass  # the disk filled up: the records are read next time
        finally:
            self.discard()

    def discard(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.tmp:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass


def loaded(path):
    """The runs of a summary this runtag wrote; {} when there is none or it is another's."""
    try:
        with open(path, "rb") as f:
            found = json.load(f)
    except (OSError, ValueError):
        return {}
    if type(found) is not dict or found.get("version") != version() or type(found.get("runs")) is not dict:
        return {}
    return found["runs"]


def shown(record):
    return None if record is None else (record.get("status"), record.get("commit"))
