"""Where a tracked data loader is, as a checkpoint keeps it: inside an epoch its position; at
an epoch's end the state of the generators it shuffles with (a new epoch starts it afresh,
drawing from them). And whether a continued epoch of it can draw what an uninterrupted one would.
"""
import torch


def is_loader(obj):
    return isinstance(obj, torch.utils.data.DataLoader)


def inexact(loader):
    """Why a continued epoch of this loader may draw other batches than one never stopped, or None.
    A sampler that draws along the epoch from a generator the loop reseeds each epoch, or one
    that cannot say where it is (torchdata fast-forwards it, drawing again), is not exact."""
    for sampler in (loader.sampler, getattr(loader.batch_sampler, "sampler", None)):
        if type(sampler) is torch.utils.data.RandomSampler:
            return "is torch's RandomSampler, which cannot say where it is in an epoch"
        if getattr(sampler, "replacement", False):
            return "draws with replacement as the epoch goes"
    return None


def generators(loader):
    """The torch.Generators a loader and its samplers draw from (each once)."""
    found = []
    for owner in (loader, loader.sampler, getattr(loader.batch_sampler, "sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not f for f in found):
            found.append(g)
    return found


def position(obj, mid):
    """What a tracked object's process saves. A loader inside an epoch: its state_dict(); at an
    epoch's end only its generators' states (its finished iterator's state would start the next
    epoch elsewhere than a run never stopped, and would undo a reseed)."""
    if not is_loader(obj):
        return obj.state_dict()
    shuffles = {"generators": [g.get_state() for g in generators(obj)]}
    return {**shuffles, "loader": obj.state_dict()} if mid else shuffles


def place(obj, state):
    """Back into a tracked object what position() saved. A loader inside an epoch: its position,
    its iterator made now (drawing any seeds from the global RNG before that is restored), then
    its generators as they were, so that the epochs after it shuffle as they would have."""
    if not is_loader(obj):
        obj.load_state_dict(state)
        return
    if "loader" in state:
        obj.load_state_dict(state["loader"])
        obj.state_dict()  # builds its iterator from the position
    for g, saved in zip(generators(obj), state["generators"]):
        g.set_state(saved)
