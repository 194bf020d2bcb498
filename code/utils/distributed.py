"""The distributed case in a few names, so the training code reads the same with 1 or N processes.

torch.distributed.run starts one process per device and sets RANK, LOCAL_RANK, WORLD_SIZE;
without it every function here is the trivial single-process answer.
"""
import os
import sys

import torch
import torch.distributed as dist

CONTROL = None  # the process group of agree(): gloo beside NCCL, else the default group (None)


def world():
    """(rank, local_rank, world_size) as set by torch.distributed.run; (0, 0, 1) otherwise."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)))


def nnodes():
    return int(os.environ.get("GROUP_WORLD_SIZE", 1))  # one worker group per node


def is_main():
    return world()[0] == 0


def init():
    """Join the process group (NCCL on GPUs, gloo on CPUs); quiet stdout on all but rank 0."""
    rank, local_rank, world_size = world()
    if world_size == 1:
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    global CONTROL
    # Flags the ranks agree on every step (stop, checkpoint due) go over a CPU side channel: on
    # NCCL they would have to wait for the GPU stream.
    CONTROL = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    if rank != 0:
        sys.stdout = open(os.devnull, "w")  # one copy of every line, from rank 0


def device(args):
    """This process's device: cuda:<local rank> under DDP on GPUs."""
    return f"cuda:{world()[1]}" if args.cuda and world()[2] > 1 else args.device


def active():
    return dist.is_available() and dist.is_initialized()


def teardown(together=True):
    """Leave the group. `together` after a finished run: a rank that tears down while a peer is
    still busy (rank 0 writing its last record) can make gloo abort the peer at exit. Not after
    a crash or a stop: a peer may be inside another collective, and a barrier would wait forever."""
    if active():
        if together:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(tensor):
    if active():
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


def from_rank0(make):
    """Rank 0 calls make(); every rank gets its result (or its exception, raised again)."""
    if not active():
        return make()
    box = [None, None]
    if is_main():
        try:
            box[0] = make()
        except Exception as err:  # the other ranks must not wait forever for a result
            box[1] = err
    dist.broadcast_object_list(box, src=0)
    if box[1] is not None:
        raise box[1]
    return box[0]


def agree(flags):
    """Each flag true when it is true on any rank: every rank decides the same, now."""
    vote = Agreement()
    vote.post(flags)
    return vote.read(default=None)


class Agreement:
    """agree() one step late: the flags posted at a step are read at the next one, so that no
    step waits for the others' vote. Every rank posts and reads at the same steps."""

    def __init__(self):
        self.votes = self.work = None

    def post(self, flags):
        self.votes = torch.tensor([int(bool(f)) for f in flags])
        if active():
            self.work = dist.all_reduce(self.votes, op=dist.ReduceOp.MAX, group=CONTROL, async_op=True)

    def read(self, default):
        """The flags posted last, agreed; `default` when none were posted since the last read."""
        if self.votes is None:
            return default
        if self.work is not None:
            self.work.wait()
        votes, self.votes, self.work = self.votes, None, None
        return [bool(v) for v in votes.tolist()]


def gather(obj):
    """Every process's obj as a list on rank 0; None on the others."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier():
    if active():
        dist.barrier()


def agent(argv):
    """torch.distributed.run with argv, as `run` starts it for several processes (utils/process.py),
    its ends an exit status instead of a traceback: stopped by a signal (passed on to every rank,
    which records the stop) 130, as main.py; a rank killed by signal N (SIGKILL: out of memory,
    say) 128+N, for the launcher to record the run `killed`. A rank that failed otherwise: as before."""
    from torch.distributed import run
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    try:
        run.main(argv)
    except SignalException:
        return 130
    except ChildFailedError as err:
        code = err.get_first_failure()[1].exitcode
        if code >= 0:
            raise
        return 128 - code
    return 0


def bar_disabled():
    """tqdm's `disable`: None (auto: on when stderr is a terminal) on rank 0, off elsewhere."""
    return None if is_main() else True
