"""The parts of a checkpoint that are not the model's: every RNG's state, and host copies of
a state's tensors (pinned and without waiting on CUDA) that training may run ahead of."""
import functools
import random

import numpy as np
import torch


def to_host(tree):
    """Dicts, lists and tensors copied to host memory, the rest shared. On CUDA the copies go to
    pinned memory without waiting; tree["event"] marks when they have landed."""
    cuda = []

    def copy(value):
        if isinstance(value, torch.Tensor):
            if value.is_cuda:
                cuda.append(True)
                return torch.empty_like(value, device="cpu", pin_memory=True).copy_(value, non_blocking=True)
            return value.detach().clone()
        if isinstance(value, dict):
            return {k: copy(v) for k, v in value.items()}
        if isinstance(value, list) or isinstance(value, tuple) and not all(isinstance(v, PLAIN) for v in value):
            return type(value)(copy(v) for v in value)
        return value  # plain values, and tuples of them (Python's RNG state: 625 ints) are immutable

    out = copy(tree)
    if cuda:
        out["event"] = torch.cuda.Event()
        out["event"].record()
    return out


PLAIN = (int, float, str, bool, type(None))


def tensor_bytes(tree):
    if isinstance(tree, torch.Tensor):
        return tree.numel() * tree.element_size()
    if isinstance(tree, dict):
        return sum(tensor_bytes(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(tensor_bytes(v) for v in tree)
    return 0


def rng_states():
    np_state = np.random.get_state(legacy=False)
    states = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": np_state["state"]["pos"], "has_gauss": np_state["has_gauss"],
                  "gauss": np_state["gauss"]},
        "torch": torch.get_rng_state(),
    }
    if cuda():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


@functools.cache
def cuda():
    return torch.cuda.is_available()


def set_rng_states(states):
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
