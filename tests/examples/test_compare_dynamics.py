"""examples/compare_dynamics.py on two tiny train.py runs (fixed and learned per-neuron
constants): the learned distributions are those of the checkpoint, the accuracies those of the
runs, and runs that differ in more than --learn-dynamics are refused."""

import json
import os

import pytest
import torch

from data_files import write_dataset
from example_runner import load_example, run_cli


def tiny_run(root, out, *extra):
    res = run_cli(
        *("--dataset", "mnist", "--data-dir", root, "--batch-size", "16", "--hidden-size", "12"),
        *("--steps", "12", "--silent-steps", "2", "--val-size", "8", "--epochs", "1", "--threads", "1"),
        *("--no-progress", "--out", out, *extra),
    )
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.slow
def test_compare_dynamics(tmp_path):
    compare = load_example("compare_dynamics")
    root = write_dataset(str(tmp_path / "data"), n_train=40, n_test=16)
    fixed = tiny_run(root, str(tmp_path / "fixed"))
    learned = tiny_run(root, str(tmp_path / "learned"), "--learn-dynamics", "per-neuron")
    out = str(tmp_path / "cmp")
    assert compare.main([fixed, learned, "--out", out, "--note", "tiny"]) == 0

    metrics = json.load(open(os.path.join(out, "metrics.json")))
    for name, folder in (("fixed", fixed), ("learned", learned)):
        run = json.load(open(os.path.join(folder, "metrics.json")))
        assert metrics["runs"][name]["test_accuracy"] == run["test_accuracy"]
        assert metrics["runs"][name]["val_accuracy_per_epoch"] == run["val_accuracy_per_epoch"]
    assert metrics["runs"]["learned"]["learn_dynamics"] == "per-neuron" and metrics["note"] == "tiny"

    # the statistics are those of the learned checkpoint's constants
    _, model, _ = compare.load_checkpoint(os.path.join(learned, "checkpoint.pt"))
    dist = json.load(open(os.path.join(out, "learned_constants.json")))
    alpha = model.layers[0].cell_constants().detach().double()[0]
    hidden = dist["alpha"]["hidden 1 (12)"]
    assert hidden["mean"] == pytest.approx(alpha.mean().item()) and hidden["max"] == pytest.approx(alpha.max().item())
    assert hidden["initial"] == pytest.approx(0.9) and hidden["moved"]  # one epoch of Adam moves them
    assert set(dist) == set(compare.CELL_CONSTANTS) and "output (100)" in dist["rho"]  # 10 neurons per class
    assert os.path.getsize(os.path.join(out, "learned_constants.png")) > 0

    # two runs that differ in more than the dynamics are not an experiment about them
    other = tiny_run(root, str(tmp_path / "other"), "--lr", "0.01")
    assert compare.main([other, learned, "--out", out]) == 2
    assert torch.isfinite(alpha).all()
