"""Next-value prediction from random windows of one long series: an IterableDataset that draws
its windows with its own generator, and says where it is with state_dict()/load_state_dict() (the
generator's state, the windows drawn this epoch). An epoch is a fixed number of windows; tracked
by name, the dataset goes on from the very window a killed run would have drawn next.

To train it: copy it over code/main.py, commit, then `run windows best_metric=val/loss
best_mode=min`. It reads config.py's epochs, batch_size, lr and split_seed.
"""
from utils import runner  # first: from here on a Ctrl-C is noted

import math
import sys

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, IterableDataset

CONTEXT = 16          # values a window shows; it asks for the next one
WINDOWS = 512         # windows in an epoch


def series(n, generator):
    """A long noisy sum of two sines."""
    t = torch.arange(n, dtype=torch.float32)
    return torch.sin(t / 7) + 0.5 * torch.sin(t / 23 + 1) + 0.1 * torch.randn(n, generator=generator)


class Windows(IterableDataset):
    """`per_epoch` windows (CONTEXT values, the next value) at random places of `values`."""

    def __init__(self, values, per_epoch, seed):
        self.values, self.per_epoch = values, per_epoch
        self.generator = torch.Generator().manual_seed(seed)
        self.drawn = 0  # windows drawn in the epoch under way

    def __iter__(self):
        while self.drawn < self.per_epoch:
            start = int(torch.randint(len(self.values) - CONTEXT, (), generator=self.generator))
            self.drawn += 1
            yield self.values[start:start + CONTEXT], self.values[start + CONTEXT]
        self.drawn = 0  # the epoch is over: the next one draws afresh, the generator going on

    def state_dict(self):
        return {"generator": self.generator.get_state(), "drawn": self.drawn}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])
        self.drawn = state["drawn"]


def every_window(values, stride):
    """The held-out windows, one every `stride` values: the same for every run."""
    starts = range(0, len(values) - CONTEXT, stride)
    return torch.stack([values[s:s + CONTEXT] for s in starts]), values[[s + CONTEXT for s in starts]]


@torch.no_grad()
def evaluate(net, x, y):
    loss = nn.functional.mse_loss(net(x).squeeze(1), y).item()
    return {"loss": loss, "rmse": math.sqrt(loss)}


def train(run):
    args, device = run.args, run.device
    values = series(20_000, torch.Generator().manual_seed(args.split_seed))
    windows = Windows(values[:16_000], WINDOWS, run.seed + run.rank)  # its own stream on each process
    loader = DataLoader(windows, batch_size=args.batch_size)  # in this process: it draws as it is read
    val, test = (tuple(t.to(device) for t in every_window(part, 7)) for part in (values[16_000:18_000],
                                                                                 values[18_000:]))
    net = nn.Sequential(nn.Linear(CONTEXT, 32), nn.ReLU(), nn.Linear(32, 1)).to(device)
    optimizer = torch.optim.Adam(net.parameters(), args.lr)
    run.track(model=net, optimizer=optimizer, data=windows)

    for epoch in run.epochs():
        for x, y in loader:
            loss = nn.functional.mse_loss(net(x.to(device)).squeeze(1), y.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.step(loss=loss.detach())
        if run.evaluated(val=evaluate(net, *val)):
            break

    run.restore_best()
    return evaluate(net, *test)


if __name__ == "__main__":
    sys.exit(runner.main(train))
