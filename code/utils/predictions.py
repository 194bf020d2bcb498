"""A split's predictions, kept for the metrics that need all of them at once (ROC-AUC, F1,
calibration): not a mean of per-batch values.

    scores = Predictions()                      # one per split it collects
    run.track(..., train_scores=scores)         # a continued epoch keeps the batches before the stop
    scores.add(logits.squeeze(1), y)            # each batch: tensors stay on the device, no sync
    out, target = scores.all()                  # the whole split, every process's shard included
    scores.reset()                              # before run.evaluated(): the next epoch starts empty

Tracked, it is saved per process (utils/checkpointing.py), so after a `con` inside an epoch
all() holds the same batches as a run never stopped. Under DDP all() gathers every process's.
"""
import torch

from utils import distributed


class Predictions:
    def __init__(self):
        self.parts = []  # one tuple of tensors per batch

    def add(self, *tensors):
        self.parts.append(tuple(t.detach() for t in tensors))

    def reset(self):
        self.parts = []

    def all(self):
        """Each column concatenated over the batches and over every process (rank order)."""
        columns = [torch.cat(column) for column in zip(*self.parts)] if self.parts else []
        if not distributed.active():
            return columns
        shards = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(shards, [c.cpu() for c in columns])
        return [torch.cat([shard[k] for shard in shards if shard]).to(c.device) for k, c in enumerate(columns)]

    def state_dict(self):
        return {"parts": [list(p) for p in self.parts]}

    def load_state_dict(self, state):
        self.parts = [tuple(p) for p in state["parts"]]
