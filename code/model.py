"""The model. Plain PyTorch: edit it, or add yours and name it in config.model."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


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


class Block(nn.Module):
    """A pre-LayerNorm transformer block: causal self-attention, then a 4x MLP, each added back."""

    def __init__(self, width, heads, dropout):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.attend_norm, self.mlp_norm = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        n, t, width = x.shape
        q, k, v = self.qkv(self.attend_norm(x)).view(n, t, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        mixed = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=True)  # position i sees positions <= i only
        x = x + self.drop(self.out(mixed.transpose(1, 2).reshape(n, t, width)))
        return x + self.mlp(self.mlp_norm(x))


class GPT(nn.Module):
    """A small decoder-only character transformer: (N, T) character ids -> (N, T, vocab) logits
    of each next character. Token and learned position embeddings, `layers` blocks, a final
    LayerNorm, and an output head that shares the token embedding's weights."""

    def __init__(self, vocab, context=64, width=64, layers=2, heads=4, dropout=0.0):
        super().__init__()
        self.token, self.position = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(Block(width, heads, dropout) for _ in range(layers)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.token.weight  # tied: one matrix reads and writes characters
        self.apply(self.init)
        for name, p in self.named_parameters():  # each residual branch's last layer smaller, so the
            if name.endswith(("out.weight", "mlp.2.weight")):  # sum over layers starts near unit size
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * layers))

    @staticmethod
    def init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, x):
        where = torch.arange(x.shape[1], device=x.device)
        h = self.drop(self.token(x) + self.position(where))
        return self.head(self.norm(self.blocks(h)))


def build(args, dims=((1, 8, 8), 10)):
    """The model for config.model (a name of args_process.MODELS); `dims`: (one sample's shape, outputs)."""
    shape, outputs = dims
    if args.model == "cnn":
        return DigitsCNN(args.channels, args.dropout, outputs)
    if args.model == "mlp":
        return MLP(math.prod(shape), outputs, args.width, args.dropout)
    if args.model == "gpt":  # dims: ((context,), the vocabulary's size)
        return GPT(vocab=outputs, context=args.context, width=args.width, layers=args.layers, heads=args.heads,
                   dropout=args.dropout)
    raise ValueError(f"unknown model {args.model!r}: add it to model.build()")
