"""`eval --backend ray`: each run scored by a Ray task (the sweep's Ray pool: utils/sweep/raypool.py
starts or reaches the cluster, --address, and sizes the tasks), which runs child.py on its node as
the local backend runs it (workers.score) and hands the metrics back; this command writes the
records. A Ctrl-C touches the stop file the tasks watch on the shared disk (as a sweep's do:
ray.cancel is lost on a task waiting in a system call)."""
import os
import shutil

from utils import paths
from utils.evaluation import workers
from utils.sweep import raypool
from utils.sweep.job import POLL_S

OPTIONS = raypool.OPTIONS
add_options = raypool.add_options
check = raypool.check  # Ray installed, --address answering, --workers only for a local instance
STOP_WAIT_S = 30  # after a Ctrl-C, how long the tasks get to stop their children before Ray is shut down


def scored(code_dir, request, root, stop_file):
    """On a Ray node: child.py on the checkout's code/, followed to its end; a workers.Scored, or
    None if the command was stopped before this task began."""
    if os.path.exists(stop_file):
        return None
    return workers.score(code_dir, request, dict(os.environ), root=root, stop=lambda: os.path.exists(stop_file))


class Pool:
    """One Ray task per run, all submitted at once: the cluster's free CPUs (GPUs) schedule them."""

    def __init__(self, args, gpus):
        self.ray = raypool.connect(args, gpus)
        self.task = raypool.remote(self.ray, scored, args, gpus)
        self.stops = raypool.stops_folder()
        self.pending = {}  # its task: the index of the request

    def start(self, requests, names):
        """requests: [(code_dir, request)], in the order results() names them (names: the runs')."""
        stop_file = str(self.stops / "eval")
        for index, (code_dir, request) in enumerate(requests):
            self.pending[self.task.remote(str(code_dir), request, str(paths.root()), stop_file)] = index

    def results(self):
        """(index, Scored) as each task ends; Scored None for one stopped before it began."""
        while self.pending:
            ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=POLL_S)
            for task in ready:
                yield self.pending.pop(task), self.result(task)

    def result(self, task):
        try:
            return self.ray.get(task)
        except Exception as err:  # the task itself failed, or its node was lost
            return workers.Scored(rc=1, metrics=None, err=str(err) or type(err).__name__, seconds=0.0)

    def stop(self):
        """Every task's child stopped, none started, before Ray is shut down."""
        (self.stops / "eval").touch()
        if self.pending:
            self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=STOP_WAIT_S)

    def close(self):
        try:
            self.ray.shutdown()
        finally:
            shutil.rmtree(self.stops, ignore_errors=True)
