"""When a run's state goes to disk (what goes and how: utils/checkpointing.py).

At an evaluation every `checkpoint_every` evaluations, and inside an epoch every
`checkpoint_steps` optimizer steps, as often as a write costs at most SHARE of the training
time since the one before (the first one always: a kill after the first evaluation loses only
what came after it), or with `checkpoint_interval` set, neither more often than every that many
seconds; a new best, the last evaluation and a stop (Ctrl-C, SIGTERM: at the next step's end)
always. A write's cost is measured from the writes themselves: the time the loop spent on it
plus the CPU time the writer thread spent (not its waits for the disk). A small state's new best
is held as a copy in memory until the next write. Under DDP the ranks decide together: inside an
epoch one step late (`Agreement`), so no step waits; by cost, on the word of rank 0, which writes.
"""
import time

from utils import distributed, signals

SHARE = 0.01  # of the training time since the last write, at most, that the next one may cost


class Cadence:
    def __init__(self, checkpointer):
        self.checkpointer = checkpointer
        self.policy = checkpointer.policy
        self.agreement = distributed.Agreement()
        self.together = distributed.active()  # the group is up before run.track(): asked once, not every step
        self.unwritten = False  # the newest evaluation is not on disk yet
        self.loop_s = None      # the time the loop spent on the last write; None before the first

    def save(self, best=False):
        self.unwritten = False
        start = time.monotonic()
        self.checkpointer.save(best)
        self.loop_s = time.monotonic() - start

    def due(self):
        """Whether training has gone on long enough since the last write for the next one."""
        ck = self.checkpointer
        if self.policy.interval is not None:
            return ck.since_write() >= self.policy.interval
        if not distributed.is_main():  # rank 0 writes and measures: the vote (any rank) is its own
            return False
        return self.loop_s is None or ck.since_write() * SHARE >= self.loop_s + ck.background_s

    def step(self, in_epoch, last):
        """After an optimizer step: a step checkpoint when due; a stop asked for ends the run
        here, after one. At an epoch's `last` step the evaluation decides both."""
        every = self.policy.steps and in_epoch % self.policy.steps == 0
        if self.together:  # decided together, on the votes of the step before
            interval_ok, stop = self.agreement.read(default=[False, False])
            self.agreement.post([self.due(), signals.pending()])
            due = every and interval_ok
        else:
            stop = signals.pending()
            due = every and self.due()
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
        due = evaluations % self.policy.every == 0 and self.due()
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
