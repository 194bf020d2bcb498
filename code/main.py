"""One run: config → data → model → optimizer → loop → test. Plain PyTorch: edit freely.

The loop talks to the tooling through `run` (utils/session.py): run.track() names what has
state, run.step() follows each optimizer step (in epoch.train), run.evaluated() takes each
evaluation's metrics. `run <tag>` starts it; `python code/main.py key=value ...` alone trains
a throw-away __result__/_debug run.
"""
from utils import runner  # first: from here on a Ctrl-C is noted, even while torch loads

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


def build_scheduler(optimizer, args):
    if args.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    if args.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, args.lr_step, args.lr_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


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
    scheduler = build_scheduler(optimizer, args)
    scaler = torch.amp.GradScaler(args.device.split(":")[0], enabled=args.precision == "fp16")
    run.track(model=net, optimizer=optimizer, scheduler=scheduler, scaler=scaler, data=train_loader)

    for ep in run.epochs():  # from where a continued run goes on
        dataloader.reseed(train_loader, run.seed, ep, run.rank)
        epoch.train(net, train_loader, optimizer, scaler, run, args, f"epoch {ep} train")
        val = epoch.evaluate(net, val_loader, args, f"epoch {ep} val")
        if args.figure_every and ep % args.figure_every == 0 and run.rank == 0:
            figures.log(run.recorder, ep, *epoch.predict(net, val_loader, args))
        scheduler.step()
        if run.evaluated(val=val):  # last in the epoch: its checkpoint is where a continued run goes on
            break  # early stopping

    best = run.restore_best()  # the best epoch's weights
    test = epoch.evaluate(net, test_loader, args, "test")
    print(f"test (best epoch {best}): " + "  ".join(f"test/{k} {v:.4f}" for k, v in test.items()))
    return test


if __name__ == "__main__":
    sys.exit(runner.main(train))
