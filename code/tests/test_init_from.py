"""`run --init-from tag/id`: a new experiment that starts from another run's best weights."""
import torch


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_init_from_starts_at_the_best_weights(project):
    project.cli("run", "-f", "pre", "epochs=2", "dropout=0.0", check=True)
    # lr so small that one epoch cannot move a weight: what comes out is what went in
    project.cli("run", "tune", "--init-from", "pre/0", "epochs=1", "lr=1e-12", check=True)
    rec = project.record("tune", 0)
    assert rec["init_from"] == "pre/0" and rec["parent"] == "pre/0"
    assert rec["overrides"] == {"epochs": 1, "dropout": 0.0, "lr": 1e-12}  # inherited, then given
    before = weights(project.run_dir("pre", 0) / "checkpoint/epoch_best.pth")
    after = weights(project.run_dir("tune", 0) / "checkpoint/epoch_1.pth")
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    assert rec["metrics"]["test/acc"] == project.record("pre", 0)["metrics"]["test/acc"]


def test_without_init_from_the_weights_are_fresh(project):
    project.cli("run", "-f", "pre", "epochs=1", check=True)
    project.cli("run", "cold", "--from", "pre/0", "lr=1e-12", check=True)
    before = weights(project.run_dir("pre", 0) / "checkpoint/epoch_best.pth")
    after = weights(project.run_dir("cold", 0) / "checkpoint/epoch_1.pth")
    assert not all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
