"""What `title` needs to know of a list's records, gathered one record at a time: the keys of
each section in order of first appearance, and the hyperparameters with one and the same value
(and type) in every record. No record is held: a list of 100,000 runs costs a few dicts."""
from utils import paths, runs


class Survey:
    def __init__(self, records=()):
        self.hparams, self.metrics = {}, {}  # key -> None: ordered sets
        self.same = None  # key -> value, equal in every record so far; None before the first
        self.types = ()  # the types of same's values, in its order
        for rec in records:
            self.add(rec)

    def add(self, rec):
        hp, m = rec.get("hparams") or {}, rec.get("metrics") or {}
        if not hp.keys() <= self.hparams.keys():  # a key new to the list: rare after the first record
            self.hparams.update(dict.fromkeys(hp))
        if not m.keys() <= self.metrics.keys():
            self.metrics.update(dict.fromkeys(m))
        if self.same is None:
            self.same = {key: value for key, value in hp.items() if value == value}  # NaN equals nothing
            self.types = tuple(map(type, self.same.values()))
        elif self.same and not self.kept_by(hp):
            self.narrow(hp)

    def kept_by(self, hp):
        """Whether every value still the same is so in `hp`, type too: the usual record's answer,
        asked of the whole dict at once rather than key by key."""
        return self.same.items() <= hp.items() and tuple(map(type, map(hp.get, self.same))) == self.types

    def narrow(self, hp):
        """Drop the keys whose value (or its type: 1 is not 1.0, nor True) differs in `hp`."""
        missing = object()
        for key, value in list(self.same.items()):
            other = hp.get(key, missing)
            if type(other) is not type(value) or other != value:
                del self.same[key]
        self.types = tuple(map(type, self.same.values()))

    def equal(self):
        """(key, value) of the hyperparameters equal in every record, in the order of the keys."""
        same = self.same or {}
        return [(key, same[key]) for key in self.hparams if key in same]


def of_list(names, keep=0):
    """The Survey of the readable records of runs `names` (a list's), and up to `keep` of them as (name, record) to
    read again from memory rather than disk (the others are read again); the names of those
    that did not read, in order."""
    survey, kept, bad = Survey(), [], []
    base = str(paths.results())
    for name in names:
        rec = runs.load(f"{base}/{name}/{runs.RECORD}", name)
        if rec is None:
            bad.append(name)
            continue
        survey.add(rec)
        if len(kept) < keep:
            kept.append((name, rec))
    return survey, kept, bad
