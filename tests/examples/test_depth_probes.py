"""examples/depth_probes.py (which produced examples/results/depth_probes_10x128.json): its
settings are the committed ones, and a tiny run writes the summary in the committed format."""

import json

import pytest

from data_files import write_dataset
from example_runner import ROOT, load_example, tiny_run_args


def test_settings_are_the_committed_ones():
    probes = load_example("depth_probes")
    with open(f"{ROOT}/examples/results/depth_probes_10x128.json") as f:
        committed = json.load(f)
    assert [s for s, _ in probes.SETTINGS] == [r["setting"] for r in committed["runs"]]


@pytest.mark.slow
def test_tiny_probes_write_the_summary(tmp_path):
    probes = load_example("depth_probes")
    root = write_dataset(str(tmp_path / "data"), n_train=32, n_test=16)
    out = tmp_path / "probes.json"
    assert (
        probes.main(
            [
                "--data-dir",
                root,
                "--out",
                str(tmp_path / "runs"),
                "--json",
                str(out),
                "--settings",
                "0",
                "4",
                "--train-options",
                *tiny_run_args(batch_size=None, hidden_size=8, steps=10, silent_steps=2),
                "--hidden-layers",
                "2",
                "--amp",
                "none",
            ]
        )
        == 0
    )
    runs = json.load(open(out))["runs"]
    assert [r["setting"] for r in runs] == [probes.SETTINGS[0][0], probes.SETTINGS[4][0]]
    assert all(0 <= r["train_accuracy_epoch1"] <= 1 and r["train_loss_epoch1"] > 0 for r in runs)
