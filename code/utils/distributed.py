"""The distributed case in a few names, so the training code reads the same with 1 or N processes."""
import os

import torch
import torch.distributed as dist


def world():
    """(rank, local_rank, world_size) as set by torch.distributed.run; (0, 0, 1) otherwise."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)))


def active():
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(tensor):
    if active():
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor
