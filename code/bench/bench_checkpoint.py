"""A model whose state is large for this machine: the template's memory and checkpoint cost.

    .venv/bin/python code/bench/bench_checkpoint.py [--width 4096] [--epochs 3] [--policy-epochs 12] [--rounds 7]

An MLP of 64 -> W -> W -> W -> W -> 10 (W=4096: 50.6M parameters, 202 MB; with Adam's two
moments and the gradients a bare loop holds about 4x that) trained with Adam on synthetic 8x8
data (__data__/synth/data.npz in a temporary project: 96 samples, 2 steps an epoch).
  - memory: peak RSS of the whole process, template against bare loop, each in a fresh
    subprocess. Template: the real main.main on a run folder (every epoch a checkpoint:
    checkpoint_interval=0; its 600 MB of state is above checkpoint_copy_mb, so it is written from the
    training state itself, not from a copy), with model.build returning the MLP. Bare: the same data loaders, model
    and optimizer in a plain loop. Also the same two after `import torch` alone, for scale.
  - write: one checkpoint of the trained state (model + optimizer + RNG): what training waits
    for (utils/checkpointing.stage: torch.save into a temporary file), against a bare
    torch.save(state, path); then, measured apart, what the writer thread does after it
    (checkpointing.publish: fsync, rename, links, pruning); --rounds pairs, taking turns
    first, each after os.sync(); the median of the pairs' ratios (--write-only: this alone).
    Three times: into a fresh file (each side's last file removed first), replacing the last,
    and into a fresh file on /dev/shm (tmpfs: the serialisation alone, no disk).
  - policy: the template with config.py's default checkpoint policy (a write when it costs at
    most 1% of the training since the last; the first evaluation's always) over --policy-epochs
    epochs, keep_checkpoints=0: how many states it wrote.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CODE = Path(__file__).resolve().parents[1]

SIDE = r"""
import json, os, resource, sys
sys.path.insert(0, {code!r})
sys.path.insert(0, {bench!r})
import torch
import torch.nn as nn
from bench_checkpoint import mlp

side, width, epochs = {side!r}, {width}, {epochs}
if side == "template":
    import main, model
    from utils import runner, runs
    model.build = lambda args, dims=None: mlp(width)
    run, _ = runs.create("bench", None, "bench_checkpoint.py", {overrides}, 0, True)
    sys.stdout = open(os.devnull, "w")
    assert runner.main(main.train, ["--run-dir", str(run.dir)]) == 0
    from utils import checkpoints
    print(json.dumps(len(checkpoints.files(run.dir / "checkpoint"))), file=sys.__stdout__)
elif side == "bare":
    import dataloader
    from utils import overrides
    from types import SimpleNamespace
    args = SimpleNamespace(**overrides.apply(overrides.load_config(), {overrides}), pin_memory=False)
    train, val, _, _ = dataloader.build(args, 0)
    net = mlp(width)
    opt = torch.optim.Adam(net.parameters(), args.lr)
    for _ in range(epochs):
        for x, y in train:
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        with torch.no_grad():
            sum(nn.functional.cross_entropy(net(x), y).item() for x, y in val)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), file=sys.__stdout__)
"""


def mlp(width):
    import torch.nn as nn
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))


def project(root):
    """A temporary project: RUNTAG_ROOT, and the synthetic data set."""
    import numpy as np
    rng = np.random.default_rng(0)
    (root / "__data__" / "synth").mkdir(parents=True)
    np.savez(root / "__data__/synth/data.npz", x=rng.random((96, 8, 8), dtype=np.float32),
             y=rng.integers(0, 10, 96))
    return {**os.environ, "RUNTAG_ROOT": str(root), "CI": "1"}


def side_run(side, width, epochs, env, **changes):
    """The side's printed figures: the template's number of checkpoint files, then peak RSS in MB."""
    overrides = {"data": "synth", "epochs": epochs, "batch_size": 64, "checkpoint_interval": 0.0,
                 "keep_checkpoints": 1, "num_workers": 0, "tensorboard": False, **changes}
    script = SIDE.format(code=str(CODE), bench=str(CODE / "bench"), side=side, width=width, epochs=epochs, overrides=overrides)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{side} failed:\n{out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.strip().splitlines()[-2 if side == "template" else -1:]]


def peak_mb(side, width, epochs, env):
    return side_run(side, width, epochs, env)[-1]


def trained_state(width):
    """The state a checkpoint of the MLP holds after one Adam step: model, optimizer, RNGs."""
    sys.path.insert(0, str(CODE))
    import torch
    from utils import snapshot as template_snapshot
    net = mlp(width)
    opt = torch.optim.Adam(net.parameters())
    torch.nn.functional.cross_entropy(net(torch.rand(8, 1, 8, 8)), torch.zeros(8, dtype=torch.long)).backward()
    opt.step()
    return {"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": {}, "epoch": 1, "step": 0,
            "best": 0.0, "best_epoch": 1, "stale": 0, "ranks": [{"rng": template_snapshot.rng_states()}]}


def write_times(snapshot, folder, rounds, replace):
    """(training's wait, the writer thread's part, bare torch.save, their paired median ratio)
    seconds, medians over `rounds`, of one trained state, and its size in MB. The two sides
    take turns going first, each after os.sync(), from the same state of the disk: with
    `replace`, each side's file of the round before is still there and is replaced (a bare loop
    saving over its `ckpt.pth`, the template renaming over `epoch_1.pth`); without, each side's
    files are removed before the sync. (On this machine writing while a large file is freed
    costs either side up to twice the time: a comparison that gave it to one side only measured
    that, not the template.)"""
    import statistics
    import torch
    from utils import checkpointing
    wait, after, bare = [], [], []
    checkpoints = folder / "checkpoint"

    def settle(*paths):
        for path in paths if not replace else ():
            path.unlink(missing_ok=True)
        os.sync()

    def plain():
        settle(folder / "bare.pth")
        start = time.perf_counter()
        torch.save(snapshot, folder / "bare.pth")
        bare.append(time.perf_counter() - start)

    def template():
        settle(*checkpoints.glob("*.pth"))
        start = time.perf_counter()
        staged = checkpointing.stage(checkpoints, [snapshot], snapshot)
        wait.append(time.perf_counter() - start)
        start = time.perf_counter()
        checkpointing.publish(checkpoints, staged, keep=1)
        after.append(time.perf_counter() - start)

    for i in range(rounds):
        for side in (plain, template) if i % 2 == 0 else (template, plain):
            side()
    ratio = statistics.median(w / b for w, b in zip(wait, bare))
    med = statistics.median
    return med(wait), med(after), med(bare), ratio, (folder / "bare.pth").stat().st_size / 2**20


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--policy-epochs", type=int, default=12, help="epochs of the default-policy run")
    p.add_argument("--rounds", type=int, default=7, help="checkpoint writes timed per side (default 7)")
    p.add_argument("--write-only", action="store_true", help="only the checkpoint write's timing")
    opts = p.parse_args()
    params = 64 * opts.width + 3 * opts.width ** 2 + 10 * opts.width
    with tempfile.TemporaryDirectory() as tmp:
        env = project(Path(tmp))
        if not opts.write_only:
            template, bare = (peak_mb(side, opts.width, opts.epochs, env) for side in ("template", "bare"))
            written = side_run("template", opts.width, opts.policy_epochs, env, checkpoint_interval=None,
                               keep_checkpoints=0)[0]
        state = trained_state(opts.width)
        writes = {case: write_times(state, Path(tmp), opts.rounds, replace)
                  for case, replace in (("into a fresh file", False), ("replacing the last", True))}
        if os.path.isdir("/dev/shm"):  # memory only: the serialisation, without the disk's moods
            with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
                writes["into memory (tmpfs)"] = write_times(state, Path(shm), opts.rounds, False)
    print(f"MLP width {opts.width}: {params / 1e6:.1f}M parameters ({params * 4 / 2**20:.0f} MB), Adam, "
          f"{opts.epochs} epochs, {os.cpu_count()} cores")
    if not opts.write_only:
        print(f"peak RSS: template {template:.0f} MB, bare loop {bare:.0f} MB: ratio {template / bare:.2f}x")
    for case, (wait, after, plain, ratio, size) in writes.items():
        print(f"one checkpoint ({size:.0f} MB) {case}, medians of "
              f"{opts.rounds} paired writes: training waits {wait:.2f} s, bare torch.save {plain:.2f} s: ratio "
              f"{ratio:.2f}x (target <= 1.05); then on the writer thread {after:.2f} s (fsync, rename, links)")
    if not opts.write_only:
        print(f"default policy: {written} checkpoints in {opts.policy_epochs} epochs")


if __name__ == "__main__":
    main()
