"""The template's cost per epoch against a bare PyTorch loop on the same model, data and optimizer.

    .venv/bin/python code/bench/bench_epoch.py [--rounds 9] [--short 2] [--long 12] [--threads N] [--profile]
                                               [--set key=value ...]

--set changes the config of both sides: `--set precision=bf16 grad_accum=2` measures the template
against a bare loop that also autocasts to bf16 and steps every 2 batches.

Template side: the real thing, `runner.main(main.train, ["--run-dir", dir])` in this process on a temporary
project (RUNTAG_ROOT), so every epoch pays for its checkpoint (written in the background),
statistic.json rewrite, TensorBoard scalars, tqdm bars (stderr looks like a terminal) and the
log tee. Bare side: the same data as plain torch DataLoaders (the template's are torchdata's
StatefulDataLoader, whose per-batch bookkeeping for step checkpoints counts as the template's),
the same model.build, optimizer and scheduler, and a plain loop that sums loss and accuracy,
steps the scheduler and validates.

Each round runs both sides, in alternating order, for `--short` and for `--long` epochs (after
a warm-up round). Two estimates of an epoch's time, both medians:
  - epoch to epoch: the intervals between consecutive epochs' ends (bare: a clock read in the
    loop; template: the wall time TensorBoard stamps on each epoch's scalars), which span the
    whole cycle of one epoch, bookkeeping and background writes included; many samples a run.
  - whole runs: (long run - short run) / extra epochs, wall and CPU (every thread), which also
    counts any writes left for the end of the run; set-up and final test cancel out.
"""
import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

CODE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CODE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

import dataloader  # noqa: E402
import main  # noqa: E402
import model as models  # noqa: E402
from utils import overrides, runner, runs, settings  # noqa: E402
from utils.snapshot import seed_everything  # noqa: E402

SEED = 1234
CHANGES = {}  # --set: config changes for both sides


class Terminal(io.TextIOWrapper):
    """A sink that says it is a terminal, so tqdm draws its bars as it would for a user."""

    def isatty(self):
        return True


def config(epochs):
    return overrides.apply(overrides.load_config(), {**CHANGES, "epochs": epochs})


def bare(epochs):
    """What a researcher would write without the template. Returns the time each epoch ended."""
    args = settings.process(config(epochs))
    seed_everything(SEED)
    train_loader, val_loader, test_loader = map(plain, dataloader.build(args, SEED)[:3])
    net = models.build(args).to(args.device)
    optimizer = main.build_optimizer(net, args)
    scheduler = main.build_scheduler(optimizer, args, epochs * -(-len(train_loader) // args.grad_accum))
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")
    ends = []
    for ep in range(1, epochs + 1):
        dataloader.reseed(train_loader, SEED, ep)
        net.train()
        totals = torch.zeros(3, dtype=torch.float64, device=args.device)
        for i, (x, y) in enumerate(train_loader, 1):
            x, y = x.to(args.device, non_blocking=True), y.to(args.device, non_blocking=True)
            with bf16:
                out = net(x)
                loss = F.cross_entropy(out, y)
            (loss / args.grad_accum).backward()
            add(totals, loss.detach(), out, y)
            if i % args.grad_accum == 0 or i == len(train_loader):
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()  # per optimizer step, as main.py's
        totals.tolist()
        evaluate(net, val_loader, args.device, bf16)
        ends.append(time.time())
    evaluate(net, test_loader, args.device, bf16)
    return ends


def plain(loader):
    """The same data, batches and shuffling generator in a plain torch DataLoader."""
    from torch.utils.data import DataLoader
    return DataLoader(loader.dataset, batch_size=loader.batch_size, shuffle=loader.generator is not None,
                      generator=loader.generator)


@torch.no_grad()
def evaluate(net, loader, device, bf16):
    net.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with bf16:
            out = net(x)
        add(totals, F.cross_entropy(out, y), out, y)
    return totals.tolist()


def add(totals, loss, out, y):
    totals[0] += loss * len(y)
    totals[1] += (out.argmax(1) == y).sum()
    totals[2] += len(y)


def template(epochs):
    """One real run of main.py, in this process, into a fresh run folder of the temporary project.
    Returns the run; its TensorBoard events say when each epoch ended (see ends())."""
    run, _ = runs.create("bench", None, "bench_epoch.py", {**CHANGES, "epochs": epochs}, SEED, True)
    run_dir = run.dir
    stdout, stderr = sys.__stdout__, sys.stderr
    sys.__stdout__ = open(os.devnull, "w")  # the log tee also copies to the terminal: not ours to show
    sys.stderr = Terminal(open(os.devnull, "wb"))
    try:
        rc = runner.main(main.train, ["--run-dir", str(run_dir)])
    finally:  # the run has closed its log tee
        sys.stdout, sys.stderr = stdout, stderr
        sys.__stdout__.close()
        sys.__stdout__ = stdout
    if rc != 0:
        raise SystemExit(f"the template run failed ({rc}): see {run.log}")
    return run


def ends(result):
    """When each epoch ended: bare returns them, a template run's TensorBoard recorded them."""
    if isinstance(result, list):
        return result
    events = EventAccumulator(str(result.tensorboard))
    events.Reload()
    return [e.wall_time for e in events.Scalars("train/loss")]


def measure(fn, epochs):
    """(wall s, cpu s, epoch end times) of one run; cpu counts every thread, the writer's too."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(epochs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, ends(result)


def profile(long):
    """The main thread's time in one long template run (the background writer is not seen)."""
    template(2)  # warm-up: imports
    prof = cProfile.Profile()
    prof.enable()
    template(long)
    prof.disable()
    stats = pstats.Stats(prof, stream=sys.stdout).strip_dirs()
    stats.sort_stats("cumulative").print_stats(20)
    print("the template's bookkeeping (main thread):")
    stats.print_stats(r"recorder.py|session.py|checkpointing.py|log.py|atomic.py|std.py|writer.py|main.py:\d+\(train\)")


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9, help="measured rounds (after one warm-up)")
    p.add_argument("--short", type=int, default=2, help="epochs of the short runs")
    p.add_argument("--long", type=int, default=12, help="epochs of the long runs")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads, both sides")
    p.add_argument("--profile", action="store_true", help="cProfile one long template run instead")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config changes for both sides")
    opts = p.parse_args()
    CHANGES.update(overrides.parse(opts.set, overrides.load_config()))
    return opts


def report(opts, results):
    """results[side][n]: the (wall, cpu, ends) of each round's n-epoch run."""
    args = settings.process(config(opts.long))
    print(f"device {args.device}, torch threads {opts.threads}, batch {args.batch_size}, "
          f"{opts.rounds} rounds of {opts.short}- and {opts.long}-epoch runs per side"
          + (f", both sides with {' '.join(opts.set)}" if opts.set else ""))
    epoch = {side: statistics.median(b - a for _, _, t in res[opts.long] + res[opts.short] for a, b in zip(t, t[1:]))
             for side, res in results.items()}
    print(f"epoch to epoch: template {1e3 * epoch['template']:.1f} ms, bare {1e3 * epoch['bare']:.1f} ms, "
          f"+{1e3 * (epoch['template'] - epoch['bare']):.1f} ms: ratio {epoch['template'] / epoch['bare']:.3f}")
    extra = opts.long - opts.short
    for clock, i in (("wall", 0), ("cpu", 1)):
        per = {side: [(lg[i] - sh[i]) / extra for sh, lg in zip(res[opts.short], res[opts.long])]
               for side, res in results.items()}
        ratios = [t / b for t, b in zip(per["template"], per["bare"])]
        print(f"whole runs, {clock}: template {1e3 * statistics.median(per['template']):.1f} ms, "
              f"bare {1e3 * statistics.median(per['bare']):.1f} ms: ratio {statistics.median(ratios):.3f} "
              f"(rounds: {' '.join(f'{r:.3f}' for r in ratios)})")


def bench():
    opts = parse()
    torch.set_num_threads(opts.threads)
    with tempfile.TemporaryDirectory(prefix="runtag-bench-") as root:
        os.environ["RUNTAG_ROOT"] = root
        if opts.profile:
            return profile(opts.long)
        template(opts.short), bare(opts.short)  # warm-up: imports, allocator, page cache
        sides = {"template": template, "bare": bare}
        results = {side: {opts.short: [], opts.long: []} for side in sides}
        for r in range(opts.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))  # neither side always goes first
            for side in order:
                for n in (opts.short, opts.long):
                    results[side][n].append(measure(sides[side], n))
    report(opts, results)


if __name__ == "__main__":
    bench()
