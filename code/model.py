"""The model. Plain PyTorch: edit it, or add yours and name it in config.model."""
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


def build(args):
    if args.model == "cnn":
        return DigitsCNN(args.channels, args.dropout)
    raise ValueError(f"unknown model {args.model!r}: add it to model.build()")
