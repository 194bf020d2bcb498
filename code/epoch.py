"""One epoch of training or evaluation, plain PyTorch. The metrics are yours: a dict of names.

train() passes each optimizer step's metrics to run.step() (the tooling averages them into
`train/<name>` at each evaluation); evaluate() returns the split's metrics, `val/<name>` and
`test/<name>` in TensorBoard and the record. config.best_metric names one of them.
Integer targets are classes (cross-entropy, accuracy), one per sample or one per position of a
sequence (a language model's next characters: outputs (N, T, V), targets (N, T)); float targets
are values (MSE, MAE).
"""
import sys
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from tqdm import tqdm

from utils.distributed import all_reduce_sum, bar_disabled


def criterion(out, y):
    """The loss that training minimises."""
    if y.is_floating_point():
        return F.mse_loss(out.squeeze(-1), y)
    return F.cross_entropy(out.flatten(0, -2), y.flatten())  # (N, C) or (N, T, C): a class per position


def measure(out, y, loss):
    """This batch's metrics, as means over the batch (tensors: nothing waits for the device)."""
    if y.is_floating_point():
        err = out.detach().squeeze(-1).float() - y
        return {"loss": loss.detach(), "mse": err.pow(2).mean(), "mae": err.abs().mean()}
    return {"loss": loss.detach(), "acc": (out.argmax(-1) == y).double().mean()}


def train(model, loader, optimizer, scheduler, scaler, run, args, validate, desc="train"):
    """Optimizer steps of args.grad_accum batches each, the scheduler's step and run.step() after
    each; `validate()` when run.step() says an evaluation is due (every eval_every steps, or the
    epoch's last). True when validate() says stop. `scaler` is a GradScaler (a pass-through unless
    precision is fp16). A continued epoch's loader starts where it stopped: run.in_epoch counts
    the steps already done."""
    model.train()
    done, batches = run.in_epoch * args.grad_accum, len(loader)
    for i, (x, y) in enumerate(bar(loader, desc, initial=done, total=batches), done + 1):
        x, y = x.to(args.device, non_blocking=True), y.to(args.device, non_blocking=True)
        with autocast(args):
            out = model(x)
            loss = criterion(out, y)
        scaler.scale(loss / args.grad_accum).backward()
        if i % args.grad_accum == 0 or i == batches:
            if args.clip_grad:
                scaler.unscale_(optimizer)  # clip the true gradients, not fp16's scaled ones
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if run.step(**measure(out, y, loss)):  # the last batch's metrics stand for the step
                if validate():
                    return True
                model.train()
    return False


@torch.no_grad()
def evaluate(model, loader, args, desc="eval", keep=None):
    """The split's metrics: sums over its batches (and every process's shard), divided by its size.
    `keep`: a list that gets each batch's outputs (on the CPU) and targets, for figures drawn from
    this same pass (see predictions())."""
    model.eval()
    sums, n = {}, 0
    for x, y in bar(loader, desc):
        x, y = x.to(args.device, non_blocking=True), y.to(args.device, non_blocking=True)
        with autocast(args):
            out = model(x)
            batch = measure(out, y, criterion(out, y))
        for name, value in batch.items():  # kept on the device: no sync per batch
            sums[name] = sums.get(name, 0) + value.double() * len(y)
        n += len(y)
        if keep is not None:
            keep.append((out.float().cpu(), y.cpu()))
    *totals, n = all_reduce_sum(torch.stack([*sums.values(), torch.tensor(float(n), dtype=torch.float64,
                                                                          device=args.device)])).tolist()
    return {name: total / n for name, total in zip(sums, totals)}


def predictions(kept):
    """What evaluate(keep=...) kept: every output of the split and its target."""
    outs, ys = zip(*kept)
    return torch.cat(outs), torch.cat(ys)


def bar(loader, desc, **counts):
    """tqdm on stderr (rank 0, a terminal) at a human rate: shown once the loop has run a second,
    redrawn at most twice a second; a short loop draws nothing and costs nothing."""
    return tqdm(loader, desc=desc, leave=False, file=sys.stderr, disable=bar_disabled(), delay=1, mininterval=0.5, **counts)


def autocast(args):
    """Mixed precision for the forward pass and the loss; nothing at fp32."""
    if args.precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float16
    return torch.autocast(args.device.split(":")[0], dtype=dtype)
