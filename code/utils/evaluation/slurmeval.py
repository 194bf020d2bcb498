"""`eval --backend slurm`: the runs scored as one Slurm job array (one job for one run), submitted
through utils/submit.py with the sweep's resource flags (--partition, --time, --gpus-per-run, ...).
Each array task runs child.py as the local backend does (workers.score) and returns its Scored
to submitit, which pickles it beside the job's logs in __statistic__/slurm/_eval/. Unlike a
sweep, this command waits for the jobs: it reads each result as its job ends and writes the
records itself. A Ctrl-C cancels the jobs (scancel)."""
import os
import time

from utils import paths, slurm, submit
from utils.evaluation import workers
from utils.sweep import slurmarray

OPTIONS = slurmarray.OPTIONS
add_options = slurmarray.add_options
check = slurmarray.check  # sbatch and submitit there, the flags valid (args.slurm_params); no --workers/--gpus
FOLDER = "_eval"  # submit.py's folder of a tag: no tag starts with `_`, so no tag's jobs mix with these
POLL_S = 1.0


class Task(submit.Task):
    """One run's scoring, as a Slurm job does it. A requeued job scores it again from the start."""

    def __init__(self, root, code_dir, request):
        super().__init__(root, [], FOLDER)
        self.code_dir, self.request = str(code_dir), request

    def __call__(self):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # submitit's, to unpickle this
        return workers.score(self.code_dir, self.request, env, root=self.root)

    def again(self):
        return Task(self.root, self.code_dir, self.request)


class Pool:
    def __init__(self, args, gpus):
        self.args, self.jobs = args, []

    def start(self, requests, names):
        """requests: [(code_dir, request)], one job each; names: the runs', for submitted.json."""
        tasks = [Task(paths.root(), code_dir, request) for code_dir, request in requests]
        argvs = [["eval", name] for name in names]
        self.jobs = submit.submit(FOLDER, self.args.slurm_params, self.args.max_timeouts, argvs,
                                  notes=[{"eval": True}] * len(argvs), tasks=tasks)
        array, many = self.jobs[0].partition("_")[0], len(self.jobs) > 1
        print(f"runtag: submitted the eval of {len(self.jobs)} run{'s' * many} as Slurm job "
              f"{array if many else self.jobs[0]}; waiting for {'them' if many else 'it'} (Ctrl-C cancels; "
              f"logs in {submit.folder(FOLDER).relative_to(paths.root())}/)", flush=True)

    def results(self):
        """(index, Scored) as each job ends: its pickled result, or its failure from its log."""
        todo = dict(enumerate(self.jobs))
        while todo:
            states = slurm.states(todo.values())  # first: a result seen missing after is missing for good
            for index, job in list(todo.items()):
                done = result(job)
                if done is None and states is not None and states.get(job) not in slurm.WAITING | slurm.RUNNING:
                    done = workers.Scored(rc=1, metrics=None, seconds=0.0,
                                          err=lost(job, states.get(job)))
                if done is not None:
                    del todo[index]
                    yield index, done
            if todo:
                time.sleep(POLL_S)

    def stop(self):
        if self.jobs:
            slurm.call(["scancel", *self.jobs])

    def close(self):
        pass


def result(job):
    """The job's Scored once submitit has written it; None before."""
    from submitit.core.utils import JobPaths, pickle_load

    path = JobPaths(submit.folder(FOLDER), job_id=job).result_pickle
    if not path.exists():
        return None
    outcome, value = pickle_load(path)
    if outcome == "success":
        return value
    return workers.Scored(rc=1, metrics=None, seconds=0.0, err=str(value))  # the task itself failed


def lost(job, state):
    """What a job that ended without a result says: its state and its log's end."""
    err = submit.log(FOLDER, job, ".err")
    try:
        tail = err.read_text(errors="replace").splitlines()[-20:]
    except OSError:
        tail = []
    return "\n".join([*tail, f"Slurm job {job} ended {state or 'gone from the queue'} without a result "
                             f"(its log: {err.relative_to(paths.root())})"])
