"""When a run's state goes to disk (what goes and how: utils/checkpointing.py).

At an evaluation every `checkpoint_every` evaluations, and inside an epoch every
`checkpoint_steps` optimizer steps, neither more often than every `checkpoint_interval`
seconds; a new best, the last evaluation and a stop (Ctrl-C, SIGTERM: at the next step's end)
always. A small state's new best is held as a copy in memory until the next write. Under DDP
the ranks decide together: inside an epoch one step late (`Agreement`), so no step waits.
"""
from utils import distributed, signals


class Cadence:
    def __init__(self, checkpointer):
        self.checkpointer = checkpointer
        self.policy = checkpointer.policy
        self.agreement = distributed.Agreement()
        self.unwritten = False  # the newest evaluation is not on disk yet

    def save(self, best=False):
        self.unwritten = False
        self.checkpointer.save(best)

    def step(self, in_epoch, last):
        """After an optimizer step: a step checkpoint when due; a stop asked for ends the run
        here, after one. At an epoch's `last` step the evaluation decides both."""
        every = self.policy.steps and in_epoch % self.policy.steps == 0
        if distributed.active():  # decided together, on the votes of the step before
            interval_ok, stop = self.agreement.read(default=[False, False])
            self.agreement.post([self.checkpointer.since_write() >= self.policy.interval, signals.pending()])
            due = every and interval_ok
        else:
            stop = signals.pending()
            due = every and self.checkpointer.since_write() >= self.policy.interval
        if (due or stop) and not last:
            self.save()
        if stop and not last:
            signals.join()
            signals.stop()

    def evaluation(self, evaluations, best):
        """An evaluation's checkpoint when due or when stopping, the best one always (held in
        memory while the state is small enough). A stop asked for is raised after it."""
        late = self.agreement.read(default=[False, False])[1]
        ck = self.checkpointer
        due = evaluations % self.policy.every == 0 and ck.since_write() >= self.policy.interval
        due, stop = distributed.agree([due, signals.pending() or late])
        if ck.small() and not (due or stop):
            if best:
                ck.hold()  # a copy of the best: it cannot be taken later
            self.unwritten = True
        elif due or stop or best:
            self.save(best=best)
        else:
            self.unwritten = True
        if stop:
            signals.join()
            signals.stop()

    def finish(self, newest_is_best):
        """Training ended: the newest evaluation to disk if it is not there yet (when it is the
        best, its held copy is it), then whatever is held."""
        ck = self.checkpointer
        if self.unwritten and ck.small() and newest_is_best:
            self.unwritten = False
            if distributed.is_main():
                ck.write([], None)
        elif self.unwritten:
            self.save()
        ck.flush()
