"""The model. Plain PyTorch: edit it, or add yours and name it in config.model."""
import math

import torch.nn as nn


class DigitsCNN(nn.Module):
    """A small CNN for 8x8 single-channel digits."""

    def __init__(self, channels=32, dropout=0.25, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(2 * channels * 4 * 4, 128), nn.ReLU(),
            nn.Linear(128, classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """Two hidden layers over flat features: tabular data such as the diabetes set."""

    def __init__(self, inputs, outputs, width=64, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(inputs, width), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(width, width), nn.ReLU(), nn.Linear(width, outputs),
        )

    def forward(self, x):
        return self.net(x)


def build(args, dims=((1, 8, 8), 10)):
    """The model for config.model (a name of args_process.MODELS); `dims`: (one sample's shape, outputs)."""
    shape, outputs = dims
    if args.model == "cnn":
        return DigitsCNN(args.channels, args.dropout, outputs)
    if args.model == "mlp":
        return MLP(math.prod(shape), outputs, args.width, args.dropout)
    raise ValueError(f"unknown model {args.model!r}: add it to model.build()")
