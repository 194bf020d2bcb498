"""The training metrics `run.step(**metrics)` is given, summed where they are (on the GPU: no
sync per step) until they are read: row 0 since the last evaluation (`train/<name>` in the
record: every process's steps), row 1 since the last log step (TensorBoard every `log_every`
steps: this process's). Each row's last column counts the steps.
"""
import torch

from utils import distributed

EVALUATION, LOG = 0, 1


class Tally:
    def __init__(self):
        self.names = ()
        self.sums = None  # (2, metrics + 1) float64, made at the first step that has metrics

    def add(self, metrics):
        if self.sums is None:
            self.start(metrics)
        elif len(metrics) != len(self.names):
            return False
        values = [v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=torch.float64,
                                                                             device=self.one.device)
                  for v in metrics.values()]
        try:
            self.sums += torch.stack([*values, self.one])  # one vector into both rows: two ops a step
        except RuntimeError:  # values on several devices, or not scalars: one at a time
            for k, value in enumerate(values):
                self.sums[:, k] += value
            self.sums[:, -1] += 1
        return True

    def start(self, metrics):
        self.names = tuple(metrics)
        value = next(iter(metrics.values()))
        device = value.device if isinstance(value, torch.Tensor) else "cpu"
        self.sums = torch.zeros(2, len(metrics) + 1, dtype=torch.float64, device=device)
        self.one = torch.ones((), dtype=torch.float64, device=device)  # each step counts one

    def steps(self, row=EVALUATION):
        return int(self.sums[row, -1]) if self.sums is not None else 0

    def means(self, row=EVALUATION):
        """`train/<name>`: the row's means, then the row starts again. Row 0 over every process
        (a collective: every rank calls it), row 1 this process's only (no collective)."""
        if self.sums is None:
            return {}
        sums = self.sums[row].clone()
        self.restart(row)
        *totals, n = (distributed.all_reduce_sum(sums) if row == EVALUATION else sums).tolist()
        return {f"train/{name}": total / n for name, total in zip(self.names, totals)} if n else {}

    def restart(self, row):
        if self.sums is not None:
            self.sums[row].zero_()

    def state(self):
        return self.sums.detach().cpu().clone() if self.sums is not None else None

    def load(self, names, sums, device):
        """From a checkpoint; older files hold row 0 alone."""
        self.names = tuple(names)
        if sums is not None and self.names:
            sums = sums.to(device)
            self.sums = sums if sums.dim() == 2 else torch.stack([sums, torch.zeros_like(sums)])
            self.one = torch.ones((), dtype=torch.float64, device=device)
