"""reconcile: a search's trials that a gone driver left running (killed, its terminal closed, its
Slurm task cancelled), ended from their runs' records. A run may have finished, or been pruned,
after the driver that watched it died: failing its trial would throw the result away, run its
values again and overshoot the budget. Only a run that did not end well is asked again."""
import sys
import time

from utils import overrides, runlock, runs

WAIT_S = 0.5  # how often a run still ending (its folder's lock held) is looked at


def named(trial):
    """The run a trial recorded as its own (user_attr "run"), if it is a run's name."""
    name = trial.user_attrs.get("run")
    try:
        return runs.Run.parse(name) if isinstance(name, str) else None
    except ValueError:
        return None


def run_of(trial, tag, default, claimed):
    """The trial's run: the one it recorded, else the tag's oldest run with its overrides that no
    other trial claims (a driver killed before it could record the name). None if there is none."""
    if (run := named(trial)) is not None:
        return run
    want = overrides.canonical({**default, **trial.params})
    for run, record in runs.records(runs.of(tag)):
        if str(run) not in claimed and isinstance(record, dict) \
                and overrides.canonical(record.get("overrides") or {}) == want:
            return run
    return None


def ended(run, trial):
    """The run's record once no process holds its folder: a run still ending (or still training,
    its driver gone) is waited for, as the run's end is the trial's."""
    if runlock.locked(run.dir):
        print(f"runtag: search {run.tag}: trial {trial.number}'s run {run} is still running, its driver gone; "
              "waiting for it to end", file=sys.stderr, flush=True)
        while runlock.locked(run.dir):
            time.sleep(WAIT_S)
    return run.read()


def verdict(record, metric):
    """("COMPLETE", value), ("PRUNED", None) or ("FAIL", None): what the study counts of a run's end."""
    record = record if isinstance(record, dict) else {}
    metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
    value = metrics.get(metric)
    if record.get("status") == "finished" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return "COMPLETE", float(value)
    if record.get("status") == "pruned":
        return "PRUNED", None
    return "FAIL", None


def settle(study, trials, tag, default, metric, alive):
    """End each running trial no one runs any more (not `alive`) as its run's record says; the
    params of those that failed are asked again. Returns how many were counted (COMPLETE, PRUNED)."""
    from optuna.trial import TrialState

    claimed = {str(run) for t in trials if (run := named(t)) is not None}
    counted = 0
    for trial in [t for t in trials if t.state == TrialState.RUNNING and not alive(t)]:
        run = run_of(trial, tag, default, claimed)
        record = ended(run, trial) if run else None
        if run is not None:
            claimed.add(str(run))
            if named(trial) is None:  # the journal says which run it was, for runs_of and the table
                study._storage.set_trial_user_attr(trial._trial_id, "run", str(run))
        state, value = verdict(record, metric)
        if state == "COMPLETE":
            study.tell(trial.number, value)
        else:
            study.tell(trial.number, state=getattr(TrialState, state))
        if state == "FAIL":
            study.enqueue_trial(trial.params, skip_if_exists=False)
        counted += state != "FAIL"
    return counted


def foreseen(trials, tag, default, metric):
    """How many running trials the next call would count, their runs ended already: read only."""
    claimed = {str(run) for t in trials if (run := named(t)) is not None}
    counted = 0
    for trial in [t for t in trials if t.state.name == "RUNNING"]:
        run = run_of(trial, tag, default, claimed)
        if run is not None:
            claimed.add(str(run))
            counted += not runlock.locked(run.dir) and verdict(run.read(), metric)[0] != "FAIL"
    return counted
