"""One run: config → data → model → optimizer → loop → test. Plain PyTorch: edit freely.

The loop talks to the tooling through `run` (utils/session.py): run.track() names what has
state, run.step() follows each optimizer step (in epoch.train) and says when an evaluation is
due, run.evaluated() takes each evaluation's metrics. `run <tag>` starts it; `python code/main.py key=value ...` alone trains
a throw-away __result__/_debug run.
"""
from utils import runner  # first: from here on a Ctrl-C is noted, even while torch loads

import math
import sys

import torch
from torch.nn.parallel import DistributedDataParallel

import dataloader
import epoch
import figures
import model as models
from utils import checkpoints, runs


def build_optimizer(net, args):
    if args.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    cls = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    return cls(net.parameters(), args.lr, weight_decay=args.weight_decay)


def build_scheduler(optimizer, args, total):
    """The lr's factor at each optimizer step (`total`: the run's steps): a linear warm-up over
    warmup_steps, then the schedule over the steps left, moving every step under max_steps and
    every epoch otherwise (an epoch run's lr is what it always was: one per epoch)."""
    per_epoch = max(total // args.epochs, 1)
    period = args.lr_step * (1 if args.max_steps else per_epoch)  # lr_step: steps or epochs

    def factor(step):
        if step < args.warmup_steps:
            return (step + 1) / args.warmup_steps
        at = step if args.max_steps else step // per_epoch * per_epoch
        if args.lr_schedule == "cosine":
            done = max(at - args.warmup_steps, 0) / max(total - args.warmup_steps, 1)
            return 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
        if args.lr_schedule == "step":
            return args.lr_gamma ** (max(at - args.warmup_steps, 0) // period)
        return 1.0
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train(run):
    args = run.args  # config.py with the run's overrides (utils/settings.py checked them)
    train_loader, val_loader, test_loader, dims = dataloader.build(args, run.seed, run.rank, run.world_size)
    net = models.build(args, dims).to(args.device)
    if run.record.get("init_from"):  # fine-tuning: start from another run's best weights
        net.load_state_dict(checkpoints.load(runs.Run.parse(run.record["init_from"]).checkpoints / runs.BEST)["model"])
    if args.compile:
        net = torch.compile(net)  # checkpoints hold the plain model's state_dict
    if run.world_size > 1:
        net = DistributedDataParallel(net, device_ids=[args.device] if args.cuda else None)
    optimizer = build_optimizer(net, args)
    total = args.max_steps or args.epochs * math.ceil(len(train_loader) / args.grad_accum)  # optimizer steps
    scheduler = build_scheduler(optimizer, args, total)
    scaler = torch.amp.GradScaler(args.device.split(":")[0], enabled=args.precision == "fp16")
    run.track(model=net, optimizer=optimizer, scheduler=scheduler, scaler=scaler, data=train_loader)

    def validate():  # when run.step() says an evaluation is due; True: stop training
        figure = args.figure_every and (run.evaluations + 1) % args.figure_every == 0 and run.rank == 0
        kept = [] if figure else None  # the figure's predictions come from this same pass
        val = epoch.evaluate(net, val_loader, args, f"step {run.steps} val", keep=kept)
        if figure:
            figures.log(run.recorder, run.steps, *epoch.predictions(kept))
        return run.evaluated(val=val)  # last: its checkpoint is where a continued run goes on

    for ep in run.epochs():  # from where a continued run goes on; with max_steps, until they are done
        dataloader.reseed(train_loader, run.seed, ep, run.rank)
        if epoch.train(net, train_loader, optimizer, scheduler, scaler, run, args, validate, f"epoch {ep} train"):
            break  # early stopping, or max_steps

    best = run.restore_best()  # the best evaluation's weights
    test = epoch.evaluate(net, test_loader, args, "test")
    print(f"test (best epoch {best}, step {run.best_steps}): " + "  ".join(f"test/{k} {v:.4f}" for k, v in test.items()))
    return test


if __name__ == "__main__":
    sys.exit(runner.main(train))
