"""The loop's calls (utils/session.py) made wrong: each is one line in the run's log and on
stderr, the run `failed` with that line as its error, no traceback, never a silently wrong record."""
import pytest

from conftest import make_project

TRACK = "    run.track(model=net, optimizer=optimizer, scheduler=scheduler, scaler=scaler, data=train_loader)\n"
EVALUATED = "        return run.evaluated(val=val)"  # the call, up to its comment
BROKEN = {
    "no evaluated": ((EVALUATED, "        return False"), "epoch 1 ended without run.evaluated(...)"),
    "no track": ((TRACK, ""), "run.epochs() before run.track(...)"),
    "track twice": ((TRACK, TRACK * 2), "run.track() was called twice"),
    "plain loader": ((TRACK, TRACK.replace("data=train_loader", "data=torch.utils.data.DataLoader(range(4))")),
                     "data is a torch DataLoader, which cannot say where it is"),
    "reserved name": ((TRACK, TRACK.replace("data=train_loader", "rng=train_loader")), "reserved names rng"),
    "best_metric not evaluated": ((EVALUATED, EVALUATED.replace("val=val", "valid=val")),
                                  "best_metric val/acc is not among the metrics evaluated (train/loss, train/acc,"
                                  " valid/loss, valid/acc)"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("protocol") / "project")


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_loop_that_breaks_the_protocol_fails_in_one_line(project, case):
    (old, new), words = BROKEN[case]
    main = project.root / "code/main.py"
    text = main.read_text()
    assert old in text
    tag = case.replace(" ", "-")
    project.commit("code/main.py", text.replace(old, new, 1), f"main.py: {case}")
    try:
        out = project.cli("run", tag, "epochs=2")
    finally:
        project.commit("code/main.py", text, "main.py as it was")
    assert out.returncode != 0
    record = project.record(tag, 0)
    assert record["status"] == "failed" and words in record["error"], record.get("error")
    log = (project.run_dir(tag, 0) / "log").read_text()
    lines = [line for line in log.splitlines() if words in line]
    assert lines and lines[0].startswith("runtag: ") and "Traceback" not in log, log[-2000:]
    assert [line for line in out.stderr.splitlines() if words in line], out.stderr[-2000:]


def test_a_sampler_that_cannot_continue_exactly_is_said_in_one_line(project):
    """Trap (a) of issue 25: a random-with-replacement sampler draws along the epoch from the
    generator the loop reseeds, so a continued epoch would see other batches; the run says so."""
    main = project.root / "code/main.py"
    text = main.read_text()
    lazy = ("torchdata.stateful_dataloader.StatefulDataLoader(train_loader.dataset, batch_size=args.batch_size,"
            " sampler=torch.utils.data.RandomSampler(train_loader.dataset, replacement=True))")
    edited = text.replace("import torch\n", "import torch\nimport torchdata.stateful_dataloader\n", 1)
    edited = edited.replace("    train_loader, val_loader, test_loader, dims = dataloader.build(args, run.seed, run.rank, run.world_size)\n",
                            "    train_loader, val_loader, test_loader, dims = dataloader.build(args, run.seed, run.rank, run.world_size)\n"
                            f"    train_loader = {lazy}\n", 1)
    assert edited.count("replacement=True") == 1
    try:
        project.commit("code/main.py", edited, "a lazy sampler")
        out = project.cli("run", "-f", "lazy", "epochs=1")
    finally:
        project.commit("code/main.py", text, "back")
    line = ("runtag: warning: data's sampler is torch's RandomSampler, which cannot say where it is in an epoch: a run"
            " continued inside an epoch may see other batches")
    assert line in out.stderr and line in (project.run_dir("lazy", 0) / "log").read_text()
