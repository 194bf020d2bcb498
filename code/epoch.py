"""One epoch of training or evaluation. Returns (mean loss, accuracy) over the whole split."""
import sys

import torch
import torch.nn.functional as F
from tqdm import tqdm

from utils.distributed import all_reduce_sum, bar_disabled


def train(model, loader, optimizer, device, state, desc="train"):
    """`state` (state.State) continues an epoch from a step checkpoint, and writes one when due."""
    model.train()
    totals = state.epoch_sums(torch.zeros(3, dtype=torch.float64, device=device))  # loss sum, correct, samples
    for x, y in tqdm(loader, desc=desc, initial=state.step, total=len(loader), leave=False, file=sys.stderr,
                     disable=bar_disabled()):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        optimizer.step()
        add(totals, loss, out, y)
        state.step_done()  # a step checkpoint when due; a Ctrl-C stops the run here
    return summarise(totals)


@torch.no_grad()
def evaluate(model, loader, device, desc="eval"):
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    for x, y in tqdm(loader, desc=desc, leave=False, file=sys.stderr, disable=bar_disabled()):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        out = model(x)
        add(totals, F.cross_entropy(out, y), out, y)
    return summarise(totals)


def add(totals, loss, out, y):
    # Kept on the device: no synchronising .item() per batch.
    totals[0] += loss.detach() * len(y)
    totals[1] += (out.argmax(1) == y).sum()
    totals[2] += len(y)


def summarise(totals):
    loss_sum, correct, n = all_reduce_sum(totals).tolist()  # over every process under DDP
    return loss_sum / n, correct / n
