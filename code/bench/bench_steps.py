"""The step clock's cost: a template run by steps against a bare loop that evaluates at the same steps.

    .venv/bin/python code/bench/bench_steps.py [--rounds 5] [--short 60] [--long 300] [--eval-every 50]
                                               [--log-every 10] [--threads N]

Template side: the real `main.py` (runner.main in this process, as bench_epoch.py runs it) with
max_steps, eval_every and log_every=10: run.step() after every optimizer step (metrics summed on
the device), TensorBoard's training means, lr and speed every 10 steps, and at each evaluation the
record rewritten, the best decided and its checkpoint held or written, tqdm, the log. Bare side:
the same data loaders (dataloader.build's: the data pipeline is the researcher's, and
bench_epoch.py measures it against plain DataLoaders), model, optimizer and per-step scheduler,
a loop that sums its loss on the device, reads it every `log_every` steps (nanoGPT's
`loss.item()` at its log interval) and evaluates every `eval_every` steps. Per step: (long run - short run) / extra steps,
each side; the ratio of the medians over rounds, and the template's extra microseconds a step.
Also, from the long runs alone, a step's time from the first log step to the last (the wall
times TensorBoard stamps on the template's, a clock read at each log on the bare side): it
leaves out start-up and the end, whose noise the difference of two runs carries.
"""
import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time

import bench_epoch as be  # same folder: its bare pieces and its in-process template run

import torch  # noqa: E402  (after bench_epoch, which puts code/ on the path)
import torch.nn.functional as F  # noqa: E402

import dataloader  # noqa: E402
import main  # noqa: E402
import model as models  # noqa: E402
from utils import settings  # noqa: E402
from utils.snapshot import seed_everything  # noqa: E402


def clock(steps, opts):
    return {"max_steps": steps, "eval_every": opts.eval_every, "log_every": opts.log_every, "figure_every": 0}


def bare(steps, opts):
    args = settings.process(be.overrides.apply(be.overrides.load_config(), clock(steps, opts)))
    seed_everything(be.SEED)
    train_loader, val_loader, test_loader = dataloader.build(args, be.SEED)[:3]
    net = models.build(args).to(args.device)
    optimizer = main.build_optimizer(net, args)
    scheduler = main.build_scheduler(optimizer, args, steps)
    no_bf16 = torch.autocast("cpu", enabled=False)
    done, marks = 0, []
    for ep in itertools.count(1):
        dataloader.reseed(train_loader, be.SEED, ep)
        net.train()
        totals = torch.zeros(3, dtype=torch.float64)
        for x, y in train_loader:
            out = net(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            be.add(totals, loss.detach(), out, y)
            done += 1
            if done % opts.log_every == 0:
                totals.tolist()  # the bare loop's log: its means read at the log interval
                totals.zero_()
                marks.append(time.time())
            if done % opts.eval_every == 0 or done == steps:
                be.evaluate(net, val_loader, args.device, no_bf16)
                net.train()
            if done == steps:
                be.evaluate(net, test_loader, args.device, no_bf16)
                return marks


def template(steps, opts):
    be.CHANGES.clear()
    be.CHANGES.update(clock(steps, opts))
    return be.ends(be.template(1))  # max_steps decides, not epochs; when each log step's scalars were written


def timed(fn, steps, opts):
    """(wall seconds of the whole run, seconds a step from its first log step to its last)."""
    start = time.perf_counter()
    marks = fn(steps, opts)
    return time.perf_counter() - start, (marks[-1] - marks[0]) / ((len(marks) - 1) * opts.log_every)


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="measured rounds (after one warm-up)")
    p.add_argument("--short", type=int, default=60, help="steps of the short runs")
    p.add_argument("--long", type=int, default=300, help="steps of the long runs")
    p.add_argument("--eval-every", type=int, default=50, help="steps between evaluations, both sides")
    p.add_argument("--log-every", type=int, default=10, help="steps between training logs, both sides")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads, both sides")
    return p.parse_args()


def bench():
    opts = parse()
    torch.set_num_threads(opts.threads)
    sides = {"template": template, "bare": bare}
    per, spans = {side: [] for side in sides}, {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="runtag-bench-") as root:
        os.environ["RUNTAG_ROOT"] = root
        template(opts.short, opts), bare(opts.short, opts)  # warm-up: imports, allocator, page cache
        for r in range(opts.rounds):
            for side in (list(sides) if r % 2 == 0 else list(reversed(sides))):  # neither always first
                (short, _), (long, span) = (timed(sides[side], n, opts) for n in (opts.short, opts.long))
                per[side].append((long - short) / (opts.long - opts.short))
                spans[side].append(span)
    t, b = statistics.median(per["template"]), statistics.median(per["bare"])
    print(f"torch threads {opts.threads}, {opts.rounds} rounds of {opts.short}- and {opts.long}-step runs,"
          f" eval_every {opts.eval_every}, log_every {opts.log_every}")
    rounds = [x / y for x, y in zip(per["template"], per["bare"])]
    print(f"per step: template {1e6 * t:.0f} us, bare {1e6 * b:.0f} us, +{1e6 * (t - b):.0f} us: ratio {t / b:.3f}"
          f" (rounds: {' '.join(f'{r:.3f}' for r in rounds)}; their median, paired: {statistics.median(rounds):.3f})")
    rounds = [x / y for x, y in zip(spans["template"], spans["bare"])]
    t, b = statistics.median(spans["template"]), statistics.median(spans["bare"])
    print(f"in-run, first log step to last of the long runs: template {1e6 * t:.0f} us, bare {1e6 * b:.0f} us a step,"
          f" +{1e6 * (t - b):.0f} us: ratio {t / b:.3f} (rounds: {' '.join(f'{r:.3f}' for r in rounds)};"
          f" their median, paired: {statistics.median(rounds):.3f})")


if __name__ == "__main__":
    sys.exit(bench())
