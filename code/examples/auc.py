"""A metric that is not a mean of per-batch values: ROC-AUC on scikit-learn's bundled breast-cancer
set (569 patients, 30 features, no download), a small MLP, best_metric=val/auc. The training
split's AUC is computed from every prediction of the epoch, kept in a tracked Predictions
(utils/predictions.py): a run killed inside an epoch and continued reports the same train/auc.

To train it: copy it over code/main.py; let code/args_process.py's check() accept val/auc as
best_metric; commit; then `run cancer best_metric=val/auc`. It reads config.py's epochs,
batch_size, lr, val_ratio, test_ratio and split_seed.
"""
from utils import runner  # first: from here on a Ctrl-C is noted

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch.utils.data import TensorDataset
from torchdata.stateful_dataloader import StatefulDataLoader  # its position goes into checkpoints

from utils.predictions import Predictions


def splits(args):
    """Standardised features and 0/1 labels, split by split_seed into train, val and test."""
    from sklearn.datasets import load_breast_cancer
    x, y = load_breast_cancer(return_X_y=True)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.float32)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(args.split_seed))
    n_val, n_test = int(len(y) * args.val_ratio), int(len(y) * args.test_ratio)
    val, test, train = order[:n_val], order[n_val:n_val + n_test], order[n_val + n_test:]
    return [(x[i], y[i]) for i in (train, val, test)]


def auc(scores, target):
    return float(roc_auc_score(target.cpu().numpy(), scores.float().cpu().numpy()))


@torch.no_grad()
def evaluate(model, x, y):
    logits = model(x).squeeze(1)
    return {"loss": F.binary_cross_entropy_with_logits(logits, y).item(), "auc": auc(logits, y)}


def train(run):
    args, device = run.args, run.device
    (x, y), (vx, vy), (tx, ty) = ((a.to(device), b.to(device)) for a, b in splits(args))
    loader = StatefulDataLoader(TensorDataset(x, y), batch_size=args.batch_size, shuffle=True,
                                generator=torch.Generator().manual_seed(run.seed))
    model = nn.Sequential(nn.Linear(x.shape[1], 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), args.lr)
    scores = Predictions()  # the epoch's training predictions, for its AUC
    run.track(model=model, optimizer=optimizer, data=loader, train_scores=scores)

    for epoch in run.epochs():
        model.train()
        for batch, target in loader:
            logits = model(batch).squeeze(1)
            loss = F.binary_cross_entropy_with_logits(logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scores.add(logits, target)
            run.step(loss=loss.detach())
        train_auc = auc(*scores.all())
        scores.reset()  # before run.evaluated(): its checkpoint starts the next epoch empty
        model.eval()
        if run.evaluated(train={"auc": train_auc}, val=evaluate(model, vx, vy)):
            break

    run.restore_best()
    return evaluate(model, tx, ty)


if __name__ == "__main__":
    sys.exit(runner.main(train))
