"""A tiny GAN on a 2-D ring of 8 Gaussians: two models, two optimizers and an exponential moving
average (EMA) of the generator's weights, all tracked by name, so that a run killed inside an
epoch continues to the same weights, bit for bit. Its metric is a kernel MMD between generated
and real points (lower is better), for the generator and for its EMA.

To train it: copy it over code/main.py; let code/args_process.py's check() accept its metrics
(train/d_loss, train/g_loss, val/mmd, val/ema_mmd) as best_metric; commit; then
`run gan best_metric=val/ema_mmd best_mode=min`. It reads config.py's epochs, batch_size, lr
and split_seed.
"""
from utils import runner  # first: from here on a Ctrl-C is noted

import math
import sys

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import TensorDataset
from torchdata.stateful_dataloader import StatefulDataLoader  # its position goes into checkpoints

NOISE = 4  # the generator's input size


def ring(n, generator):
    """n points from 8 Gaussians around the unit circle."""
    angle = torch.randint(8, (n,), generator=generator) * (2 * math.pi / 8)
    return torch.stack([angle.cos(), angle.sin()], 1) + 0.05 * torch.randn(n, 2, generator=generator)


def mlp(inputs, outputs, width=32):
    return nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, outputs))


def mmd(x, y, scale=0.2):
    """The squared maximum mean discrepancy of two point sets under a Gaussian kernel."""
    def k(a, b):
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * scale ** 2)).mean()
    return k(x, x) + k(y, y) - 2 * k(x, y)


@torch.no_grad()
def score(generator, real, noise):
    return mmd(generator(noise), real).item()


def train(run):
    args, device = run.args, run.device
    fixed = torch.Generator().manual_seed(args.split_seed)  # the same points and noise for every run
    real, val, test = (ring(n, fixed).to(device) for n in (2048, 512, 512))
    val_noise, test_noise = (torch.randn(512, NOISE, generator=fixed).to(device) for _ in range(2))
    loader = StatefulDataLoader(TensorDataset(real), batch_size=args.batch_size, shuffle=True)

    g, d = mlp(NOISE, 2).to(device), mlp(2, 1).to(device)
    g_opt = torch.optim.Adam(g.parameters(), args.lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), args.lr, betas=(0.5, 0.999))
    ema = AveragedModel(g, multi_avg_fn=get_ema_multi_avg_fn(0.95))
    run.track(generator=g, discriminator=d, g_opt=g_opt, d_opt=d_opt, ema=ema, data=loader)
    bce = nn.BCEWithLogitsLoss()

    for epoch in run.epochs():
        for (batch,) in loader:
            ones, zeros = torch.ones(len(batch), 1, device=device), torch.zeros(len(batch), 1, device=device)
            fake = g(torch.randn(len(batch), NOISE, device=device))
            d_loss = bce(d(batch), ones) + bce(d(fake.detach()), zeros)
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            g_loss = bce(d(fake), ones)
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
            ema.update_parameters(g)
            run.step(d_loss=d_loss.detach(), g_loss=g_loss.detach())
        if run.evaluated(val={"mmd": score(g, val, val_noise), "ema_mmd": score(ema, val, val_noise)}):
            break

    run.restore_best()  # the best evaluation's generator, discriminator and EMA
    return {"mmd": score(g, test, test_noise), "ema_mmd": score(ema, test, test_noise)}


if __name__ == "__main__":
    sys.exit(runner.main(train))
