"""A plain PyTorch script in the style of pytorch/examples' MNIST: train() and test() with
explicit arguments, on scikit-learn's bundled 8x8 digits (no download). No runtag in it:
digits_runtag.py is the same script ported to runtag; `diff` the two to see what it took.

    python code/examples/digits_plain.py --epochs 3
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


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


def train(args, model, device, loader, optimizer, epoch):
    model.train()
    for batch, (data, target) in enumerate(loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
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


def main(args):
    torch.manual_seed(args.seed)
    device = torch.device("cpu")
    train_loader, test_loader = digits(args.batch_size)
    model = Net().to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=args.lr_gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        scheduler.step()
        test(model, device, test_loader)
    return test(model, device, test_loader)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="digits, pytorch/examples style")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--lr-gamma", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-interval", type=int, default=10)
    main(p.parse_args())
