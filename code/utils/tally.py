"""The training metrics `run.step(**metrics)` is given, summed where they are until they are
read: row 0 since the last evaluation (`train/<name>` in the record: every process's steps), row 1
since the last log step (TensorBoard every `log_every` steps: this process's). Each row's last
column counts the steps. On a GPU the sums are a tensor there (no sync per step); on the CPU they
are Python floats, the same float64 additions in the same order, for a tenth of a tensor op's cost.
"""
import torch

from utils import distributed

EVALUATION, LOG = 0, 1


class Tally:
    def __init__(self):
        self.names = ()
        self.device = None
        self.rows = None     # on the CPU: two lists of floats
        self.tensor = None   # elsewhere: (2, metrics + 1) float64 on the metrics' device

    @property
    def sums(self):
        """Both rows as one float64 tensor (None before the first step with metrics)."""
        if self.rows is not None:
            return torch.tensor(self.rows, dtype=torch.float64)
        return self.tensor

    def add(self, metrics):
        if self.device is None:
            self.start(metrics)
        elif len(metrics) != len(self.names):
            return False
        if self.rows is not None:
            values = [*map(float, metrics.values()), 1.0]  # a CPU tensor's float: no wait, ~1 µs
            for row in self.rows:
                for k, value in enumerate(values):
                    row[k] += value
            return True
        values = [v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=torch.float64,
                                                                             device=self.device)
                  for v in metrics.values()]
        try:
            self.tensor += torch.stack([*values, self.one])  # one vector into both rows: two ops a step
        except RuntimeError:  # values on several devices, or not scalars: one at a time
            for k, value in enumerate(values):
                self.tensor[:, k] += value
            self.tensor[:, -1] += 1
        return True

    def start(self, metrics):
        value = next(iter(metrics.values()))
        self.begin(tuple(metrics), value.device if isinstance(value, torch.Tensor) else torch.device("cpu"))

    def begin(self, names, device, sums=None):
        """Zero sums (or `sums`, a (2, n) tensor) for `names`, kept on `device`."""
        self.names, self.device = names, torch.device(device)
        if sums is None:
            sums = torch.zeros(2, len(names) + 1, dtype=torch.float64)
        if self.device.type == "cpu":
            self.rows, self.tensor = sums.cpu().tolist(), None
        else:
            self.rows, self.tensor = None, sums.to(self.device)
            self.one = torch.ones((), dtype=torch.float64, device=self.device)  # each step counts one

    def steps(self, row=EVALUATION):
        return int(self.sums[row, -1]) if self.device is not None else 0

    def means(self, row=EVALUATION):
        """`train/<name>`: the row's means, then the row starts again. Row 0 over every process
        (a collective: every rank calls it), row 1 this process's only (no collective)."""
        if self.device is None:
            return {}
        sums = self.sums[row].clone()
        self.restart(row)
        *totals, n = (distributed.all_reduce_sum(sums) if row == EVALUATION else sums).tolist()
        return {f"train/{name}": total / n for name, total in zip(self.names, totals)} if n else {}

    def restart(self, row):
        if self.rows is not None:
            self.rows[row] = [0.0] * len(self.rows[row])
        elif self.tensor is not None:
            self.tensor[row].zero_()

    def state(self):
        return self.sums.detach().cpu().clone() if self.device is not None else None

    def load(self, names, sums, device):
        """From a checkpoint; older files hold row 0 alone."""
        if sums is not None and names:
            sums = sums.cpu().to(torch.float64)
            self.begin(tuple(names), device, sums if sums.dim() == 2 else torch.stack([sums, torch.zeros_like(sums)]))
        else:
            self.names = tuple(names)
