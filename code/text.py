"""data=stdlib: characters of the Python standard library's own source, for a language model.

No download: the corpus is the interpreter's installation (sysconfig's stdlib folder), its
top-level *.py files sorted by name and concatenated, cut to CHARS characters. Anything outside
printable ASCII and the newline becomes one replacement symbol, so the vocabulary is the same 97
symbols on every machine with this Python. Split by position: train, then val, then test.
Items are windows: x = chars[i:i+context], y = the next character of each, chars[i+1:i+context+1].
"""
import math
import sysconfig
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torchdata.stateful_dataloader import StatefulDataLoader

CHARS = 1_500_000              # the corpus: the first 1.5 MB of the concatenated files
VAL, TEST = 0.05, 0.05         # the last 10% of the positions: val, then test
EVAL_WINDOWS = 256             # fixed windows of val and of test, evenly spaced: an evaluation well under a second
VOCAB = "\x00\n" + "".join(map(chr, range(32, 127)))  # "\x00" stands for any other character


def corpus():
    """The whole corpus encoded, one int64 per character (VOCAB's indices)."""
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    text = "".join(f.read_text(encoding="utf-8", errors="replace") for f in files)[:CHARS]
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    ids = np.where((codes >= 32) & (codes < 127), codes - 30, 0)  # " " is 2, "~" is 96
    return torch.from_numpy(np.where(codes == 10, 1, ids))


def splits():
    """(train, val, test): consecutive pieces of the corpus, no character in two of them."""
    chars = corpus()
    n_val, n_test = int(len(chars) * VAL), int(len(chars) * TEST)
    n_train = len(chars) - n_val - n_test
    return chars[:n_train], chars[n_train:n_train + n_val], chars[n_train + n_val:]


def decode(ids):
    return "".join(VOCAB[i] for i in ids)


class Windows(Dataset):
    """Windows of `context`+1 characters of `chars`: item k starts at starts[k] (every position when
    starts is None)."""

    def __init__(self, chars, context, starts=None):
        self.chars, self.context, self.starts = chars, context, starts

    def __len__(self):
        return len(self.chars) - self.context if self.starts is None else len(self.starts)

    def __getitem__(self, k):
        i = k if self.starts is None else int(self.starts[k])
        window = self.chars[i:i + self.context + 1]
        return window[:-1], window[1:]


class Draws(Sampler):
    """`num_samples` window starts in [0, n), drawn with replacement from `generator`, an epoch's
    all at once when its iterator is made (right after dataloader.reseed()). Not in chunks as
    torch's and torchdata's RandomSampler draw them, lazily along the epoch: a continued run's
    reseed() at the top of the epoch would reset the shared generator under the chunks still to
    come, and a fast-forward redraws from wherever the generator is then (trap (a), docs/lm.md)."""

    def __init__(self, n, num_samples, generator):
        self.n, self.num_samples, self.generator = n, num_samples, generator

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        return Drawn(self)


class Drawn:
    """One epoch's draws and how many were taken; state_dict(): enough to draw them again."""

    def __init__(self, sampler):
        self.sampler, self.taken = sampler, 0
        self.start = sampler.generator.get_state()
        self.order = torch.randint(sampler.n, (sampler.num_samples,), generator=sampler.generator).tolist()

    def __iter__(self):
        return self

    def __next__(self):
        if self.taken == len(self.order):
            raise StopIteration
        self.taken += 1
        return self.order[self.taken - 1]

    def state_dict(self):
        return {"generator": self.start, "taken": self.taken}

    def load_state_dict(self, state):
        self.sampler.generator.set_state(state["generator"])
        self.__init__(self.sampler)
        self.taken = state["taken"]


def fixed(chars, context, rank=0, world_size=1):
    """EVAL_WINDOWS windows evenly spaced over a split, the same for every run; this process's shard."""
    starts = torch.linspace(0, len(chars) - context - 1, min(EVAL_WINDOWS, len(chars) - context)).long()
    return Windows(chars, context, starts[rank::world_size])


def build(args, seed, rank=0, world_size=1):
    """The three loaders and dims ((context,), vocabulary size), as dataloader.build() returns them.
    Training draws random windows with replacement, one pass's worth of characters an epoch
    (len(train) // context windows, shared out among DDP's processes), from the loader's generator: dataloader.reseed() reseeds it
    each epoch, so an epoch's windows are a function of (seed, epoch, rank)."""
    train, val, test = splits()
    windows = Windows(train, args.context)
    generator = torch.Generator().manual_seed(seed + rank)
    sampler = Draws(len(windows), len(train) // args.context // world_size, generator)  # shared out, as DDP's
    common = dict(batch_size=args.batch_size, num_workers=args.num_workers, pin_memory=args.pin_memory,
                  persistent_workers=args.num_workers > 0)
    loaders = [StatefulDataLoader(windows, sampler=sampler, generator=generator, **common)]
    loaders += [StatefulDataLoader(fixed(part, args.context, rank, world_size), **common) for part in (val, test)]
    return (*loaders, ((args.context,), len(VOCAB)))


def unigram_loss():
    """Cross-entropy (nats per character) on val of a character-unigram model fitted on train
    (counts with add-one smoothing): the baseline a language model must beat."""
    train, val, _ = splits()
    counts = torch.bincount(train, minlength=len(VOCAB)).double() + 1
    return float(-(counts / counts.sum()).log()[val].mean())


if __name__ == "__main__":
    nats = unigram_loss()
    print(f"unigram val loss: {nats:.4f} nats/char, {nats / math.log(2):.4f} bits/char; "
          f"splits {[len(s) for s in splits()]} characters, vocabulary {len(VOCAB)}")
