"""digits_plain.py ported to runtag: the same train() and test(), plus the loop's calls to
`run` (utils/session.py). `diff code/examples/digits_plain.py code/examples/digits_runtag.py`
shows every line it took. To train it: copy it over code/main.py, add `log_interval = 10` to
code/config.py, commit, then `run digits-mnist lr=1.0 epochs=5`.
"""
from utils import runner  # first: from here on a Ctrl-C is noted

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchdata.stateful_dataloader import StatefulDataLoader as DataLoader  # noqa: F811 -- its position goes to checkpoints


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        return F.log_softmax(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))), dim=1)


def digits(batch_size):
    """Train and test loaders over the 1797 digits, split 80/20 by a fixed permutation. The train
    loader shuffles with torch's global RNG, which torch.manual_seed() seeds."""
    from sklearn.datasets import load_digits
    data = load_digits()
    x = torch.tensor(data.images[:, None] / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(y))
    train_set = TensorDataset(x[order[:cut]], y[order[:cut]])
    test_set = TensorDataset(x[order[cut:]], y[order[cut:]])
    return DataLoader(train_set, batch_size, shuffle=True), DataLoader(test_set, 256)


def train(args, model, device, loader, optimizer, epoch, run):
    model.train()
    for batch, (data, target) in enumerate(loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
        run.step(loss=loss.detach())
        if batch % args.log_interval == 0:
            print(f"epoch {epoch} [{batch * len(data)}/{len(loader.dataset)}] loss {loss.item():.4f}")


def test(model, device, loader):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            loss += F.nll_loss(output, target, reduction="sum").item()
            correct += (output.argmax(1) == target).sum().item()
    n = len(loader.dataset)
    print(f"test: loss {loss / n:.4f}, accuracy {correct}/{n}")
    return {"loss": loss / n, "acc": correct / n}


def main(run):
    args, device = run.args, run.device  # config.py with the run's overrides; seeded by the run
    train_loader, test_loader = digits(args.batch_size)
    model = Net().to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=args.lr_gamma)
    run.track(model=model, optimizer=optimizer, scheduler=scheduler, data=train_loader)
    for epoch in run.epochs():
        train(args, model, device, train_loader, optimizer, epoch, run)
        scheduler.step()  # before run.evaluated(): its checkpoint holds the epoch's every change
        if run.evaluated(val=test(model, device, test_loader)):
            break  # early stopping (config.py's patience)
    return test(model, device, test_loader)


if __name__ == "__main__":
    sys.exit(runner.main(main))
