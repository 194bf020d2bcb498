"""search: a sweep that asks Optuna for each trial (code/requirements-search.txt, imported only for
a file with `search:`), with its study in a file journal a person can read:
__statistic__/search/<tag>.journal, one JSON line per event, checked as it is read (journal.py).

Each trial is an ordinary run of the tag. While it runs, the sweep reads its statistic.json
(rewritten at every evaluation), reports the metric at each (by optimizer step), and when the pruner says so stops the run
with SIGINT: it ends after its checkpoint, and its status becomes `pruned`. When a run ends its
result is told to the study. Finished and pruned trials count toward the budget; a trial whose
run was interrupted (the sweep stopped) is asked again by the next call. A trial left running by
a driver that died is ended by the next call as its run's record says (reconcile.py).
"""
import random
import threading
from contextlib import contextmanager

from utils import paths, runs
from utils.errors import UserError
from utils.sweep import journal as journal_file
from utils.sweep import reconcile
from utils.sweep.job import Job

STATE = {"finished": "COMPLETE", "pruned": "PRUNED"}  # a run's end as the study counts it; else FAIL


def optuna():
    try:
        import optuna
    except ImportError:
        raise UserError("a search needs Optuna, which is not installed",
                        "pip install -r code/requirements-search.txt") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def journal(tag):
    return paths.statistic() / "search" / f"{tag}.journal"


def distributions(search):
    o = optuna().distributions
    made = {}
    for key, d in search.space.items():
        if d.kind == "choice":
            made[key] = o.CategoricalDistribution(d.values)
        elif d.kind == "int":
            made[key] = o.IntDistribution(d.low, d.high, step=d.step, log=d.log)
        else:
            made[key] = o.FloatDistribution(d.low, d.high, log=d.log)
    return made


def counted(trials):
    return sum(t.state.name in STATE.values() for t in trials)


def remaining(tag, search, budget):
    """How many trials a call would run now, read without writing (for --dry-run); trials left
    running count as the next call will count them: by their runs' records."""
    optuna()
    trials = journal_file.trials(journal(tag), tag)
    return max(budget - counted(trials) - reconcile.foreseen(trials, tag, search.default, search.metric), 0)


def open_study(tag, search, seed, budget=None):
    o = optuna()
    journal(tag).parent.mkdir(parents=True, exist_ok=True)
    storage = o.storages.JournalStorage(journal_file.backend(journal(tag)))  # whole lines only
    samplers = {"random": lambda: o.samplers.RandomSampler(seed=seed),
                # TPE models the trials after its first random ones: 10 by default, a third of a small budget
                "tpe": lambda: o.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, (budget or 30) // 3))),
                "grid": lambda: grid_sampler(o, search.grid(), seed)}
    pruners = {"none": lambda: o.pruners.NopPruner(),
               "median": lambda: o.pruners.MedianPruner(n_startup_trials=1),  # after `grace` evaluations: watch()
               "asha": lambda: o.pruners.SuccessiveHalvingPruner(min_resource=search.grace,
                                                                  reduction_factor=search.eta)}
    return o.create_study(study_name=tag, storage=storage, load_if_exists=True,
                          direction="maximize" if search.goal == "max" else "minimize",
                          sampler=samplers[search.method](), pruner=pruners[search.prune]())


def grid_sampler(o, grid, seed):
    """Optuna's GridSampler, without its study.stop() once every cell has run: that stops only
    study.optimize(), which a sweep does not use (its budget is the grid's size), and outside it
    raises, after the last trial's end is stored: the sweep died with a traceback at its end."""
    sampler = o.samplers.GridSampler(grid, seed=seed)
    sampler.after_trial = lambda *args, **kwargs: None
    return sampler


@contextmanager
def settled():
    """A trial that another call has ended meanwhile (it found the run's record): its end stands."""
    try:
        yield
    except optuna().exceptions.UpdateFinishedTrialError:
        pass


def trained(record):
    """Whether the run's training is over: its last evaluation is no reason to stop it."""
    if record.get("max_steps"):
        return (record.get("step") or 0) >= record["max_steps"]
    return (record.get("epoch") or 0) >= (record.get("epochs") or 0)


class Study:
    """The search of one `sweep` call: asks trials as workers free up, watches and prunes them,
    tells their ends. Thread-safe: pools ask from their threads."""

    def __init__(self, tag, search, budget, fixed_seed, alive=lambda trial: False, offset=0):
        """`alive(trial)`: a running trial that someone still runs (a Slurm task), not to ask again.
        `offset`: moves the sampler's seed, for askers that open the study at the same moment."""
        self.tag, self.search, self.budget = tag, search, budget
        # The sampler's seed goes on with the study's length: a resumed study is not asked its first trials again.
        base = fixed_seed if fixed_seed is not None else random.randrange(2**31)
        existing = journal_file.trials(journal(tag), tag)
        self.study = open_study(tag, search, seed=base + len(existing) + offset, budget=budget)
        self.lock = threading.Lock()
        self.named = set()  # trials whose run's name is in the journal
        self.reask(alive)
        self.todo = max(budget - counted(self.study.get_trials(deepcopy=False)), 0)
        self.distributions = distributions(search)
        self.reported = {}
        self.failed = 0  # trials whose run failed (a crash, a missing metric): not counted, reported

    def reask(self, alive):
        """Trials left running by a call that was stopped: ended as their runs' records say (a run
        may have finished after its driver died); those whose run did not end well are asked again."""
        reconcile.settle(self.study, self.study.get_trials(deepcopy=False), self.tag, self.search.default,
                         self.search.metric, alive)

    def job(self, number=None):
        """One Job: a new trial, or (a Slurm task started again) the running trial `number`."""
        if number is None:
            with self.lock:
                trial = self.study.ask(self.distributions)
        else:
            frozen = self.study.get_trials(deepcopy=False)[number]
            trial = optuna().trial.Trial(self.study, frozen._trial_id)
        return Job({**self.search.default, **trial.params}, trial=trial)

    def jobs(self):
        """Jobs, asked one at a time, up to what the budget has left."""
        while True:
            with self.lock:
                if self.todo <= 0:
                    return
                self.todo -= 1
            yield self.job()

    def watch(self, job):
        """Report the running trial's new evaluation, if any; True when the pruner says stop it."""
        if job.name and job.trial.number not in self.named:
            self.name(job)
        record = runs.Run.parse(job.name).read() if job.name else None
        if not record or job.pruned:
            return False
        value = (record.get("metrics") or {}).get(self.search.metric)
        step = record.get("step") or record.get("epoch") or 0  # older records count epochs only
        evaluations = record.get("evaluations") or record.get("epoch") or 0
        if not isinstance(value, (int, float)) or step <= self.reported.get(job.trial.number, 0):
            return False
        self.reported[job.trial.number] = step
        with self.lock, settled():
            # median compares trials at the same optimizer step; asha's resource is evaluations
            job.trial.report(float(value), evaluations if self.search.prune == "asha" else step)
            if evaluations >= self.search.grace and not trained(record) and job.trial.should_prune():
                job.pruned = True
        return job.pruned

    def name(self, job):
        """The journal says which run the trial is as soon as it is known: a later call ends the
        trial from that run's record if this one dies (utils/sweep/reconcile.py)."""
        with self.lock, settled():
            job.trial.set_user_attr("run", job.name)
            self.named.add(job.trial.number)

    def tell(self, job):
        """The run's end into the study (and `pruned` into its record); None if it was stopped."""
        o = optuna()
        run = runs.Run.parse(job.name) if job.name else None
        if run and job.pruned:
            run.conclude("pruned", ("interrupted", "running"))
        record = run.read() if run else None
        status = (record or {}).get("status")
        if job.name and job.trial.number not in self.named:
            self.name(job)
        with self.lock, settled():
            if status == "interrupted" and not job.pruned:
                return None  # the sweep was stopped: left running, asked again next time (reask)
            value = (record or {}).get("metrics", {}).get(self.search.metric)
            if status == "finished" and isinstance(value, (int, float)):
                self.study.tell(job.trial, float(value))
            elif status == "pruned":
                self.study.tell(job.trial, state=o.trial.TrialState.PRUNED)
            else:
                self.study.tell(job.trial, state=o.trial.TrialState.FAIL)
                self.failed += 1
            return status


def runs_of(tag, search):
    """The runs of the study's counted trials, as `tag/id`, best first (their metric, the goal's way);
    read without writing."""
    optuna()
    counted_ = [(str(run), value_of(t)) for t in journal_file.trials(journal(tag), tag)
                if t.state.name in STATE.values() and (run := reconcile.named(t)) is not None]
    done = sorted((c for c in counted_ if c[1] is not None), key=lambda c: c[1], reverse=search.goal == "max")
    return list(dict.fromkeys(name for name, _ in done + [c for c in counted_ if c[1] is None]))


def value_of(trial):
    """The trial's one value, or None (a pruned trial; a journal line a person wrote otherwise)."""
    values = trial.values
    if isinstance(values, list) and len(values) == 1 and isinstance(values[0], (int, float)):
        return float(values[0])
    return None
