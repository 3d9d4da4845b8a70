"""Smoke test of examples/packed_sequence.py (the variable-length PackedSequence classifier)
on a small synthetic MNIST tree: it calibrates, trains and learns."""

import os

import numpy as np
import pytest

from data_files import write_idx
from example_runner import load_example
from helpers import requires_fused


def write_stripes(root, n_train=320, n_test=100, seed=0):
    """Synthetic digits: faint noise and a bright 3-row stripe at rows 2 + 2 * label (all
    within the first 24 rows)."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "mnist")
    os.makedirs(folder)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 30, (n, 28, 28), dtype=np.uint8)
        for k, label in enumerate(labels):
            images[k, 2 + 2 * label : 5 + 2 * label, 4:24] = 255
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte.gz"), images, True)
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte.gz"), labels, True)
    return root


@requires_fused
def test_packed_sequence_example_trains(tmp_path):
    example = load_example("packed_sequence")
    data = write_stripes(str(tmp_path / "data"))
    metrics = example.main(
        [
            "--data-dir",
            data,
            "--epochs",
            "3",
            "--hidden-size",
            "32",
            "--batch-size",
            "32",
            "--min-length",
            "24",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert os.path.exists(tmp_path / "run" / "metrics.json")
    assert metrics["calibration"]["rnn.l0"]["rate"] == pytest.approx(0.05, rel=0.1)
    losses = [h["train_loss"] for h in metrics["history"]]
    assert losses[-1] < losses[0]
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1
