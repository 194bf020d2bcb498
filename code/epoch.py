"""One epoch of training or evaluation. Returns the epoch's metrics: {name: mean over the split}.

A task's metrics are defined here once: METRICS names them, measure() sums them per batch. Every
name becomes `train/<name>`, `val/<name>`, `test/<name>` in TensorBoard and the record, and
config.best_metric may name any of them (e.g. "val/mae").
"""
import sys
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from tqdm import tqdm

from utils.distributed import all_reduce_sum, bar_disabled

METRICS = {"classification": ("loss", "acc"), "regression": ("loss", "mse", "mae")}  # what measure() sums


def criterion(out, y, task):
    """The loss that training minimises."""
    if task == "classification":
        return F.cross_entropy(out, y)
    return F.mse_loss(out.squeeze(-1), y)


def measure(out, y, loss, task):
    """This batch's sum of each metric of METRICS[task], in that order (a mean of the batch times its size)."""
    if task == "classification":
        return loss.detach() * len(y), (out.argmax(1) == y).sum()
    err = out.detach().squeeze(-1).float() - y
    return loss.detach() * len(y), err.pow(2).sum(), err.abs().sum()


def train(model, loader, optimizer, scaler, state, args, desc="train"):
    """Optimizer steps of args.grad_accum batches each. `scaler` is a GradScaler (a pass-through
    unless precision is fp16); `state` (state.State) continues an epoch from a step checkpoint and
    writes one when due."""
    model.train()
    sums = state.epoch_sums(torch.zeros(len(METRICS[args.task]) + 1, dtype=torch.float64, device=args.device))
    done, batches = state.step * args.grad_accum, len(loader)  # a continued epoch has `done` behind it
    for i, (x, y) in enumerate(tqdm(loader, desc=desc, initial=done, total=batches, leave=False,
                                    file=sys.stderr, disable=bar_disabled()), done + 1):
        x, y = x.to(args.device, non_blocking=True), y.to(args.device, non_blocking=True)
        with autocast(args):
            out = model(x)
            loss = criterion(out, y, args.task)
        scaler.scale(loss / args.grad_accum).backward()
        add(sums, measure(out, y, loss, args.task), len(y))
        if i % args.grad_accum == 0 or i == batches:
            if args.clip_grad:
                scaler.unscale_(optimizer)  # clip the true gradients, not fp16's scaled ones
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            state.step_done()  # a step checkpoint when due; a Ctrl-C stops the run here
    return summarise(sums, args.task)


@torch.no_grad()
def evaluate(model, loader, args, desc="eval"):
    model.eval()
    sums = torch.zeros(len(METRICS[args.task]) + 1, dtype=torch.float64, device=args.device)
    for x, y in tqdm(loader, desc=desc, leave=False, file=sys.stderr, disable=bar_disabled()):
        x, y = x.to(args.device, non_blocking=True), y.to(args.device, non_blocking=True)
        with autocast(args):
            out = model(x)
            loss = criterion(out, y, args.task)
        add(sums, measure(out, y, loss, args.task), len(y))
    return summarise(sums, args.task)


@torch.no_grad()
def predict(model, loader, args):
    """Every prediction of the split and its target, on the CPU: for figures."""
    model.eval()
    outs, ys = [], []
    for x, y in loader:
        with autocast(args):
            outs.append(model(x.to(args.device)).float().cpu())
        ys.append(y)
    return torch.cat(outs), torch.cat(ys)


def autocast(args):
    """Mixed precision for the forward pass and the loss; nothing at fp32."""
    if args.precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float16
    return torch.autocast(args.device.split(":")[0], dtype=dtype)


def add(sums, values, n):
    # Kept on the device: no synchronising .item() per batch. The last place counts samples.
    for k, value in enumerate(values):
        sums[k] += value
    sums[-1] += n


def summarise(sums, task):
    *totals, n = all_reduce_sum(sums).tolist()  # over every process under DDP
    return {name: total / n for name, total in zip(METRICS[task], totals)}
