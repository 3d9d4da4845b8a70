"""examples/evaluate.py: averaging the logits of several codings, and the script on a checkpoint
written by train.py."""

import json
import os

import pytest
import torch

from srcext.data import RateEncoder
from srcext.models import SRCClassifier

from data_files import write_dataset
from example_runner import load_example, run_cli, tiny_run_args


@pytest.mark.slow
def test_evaluate_averages_the_logits_of_several_codings(tmp_path, capsys):
    ev = load_example("evaluate")
    torch.manual_seed(0)
    model = SRCClassifier(25, hidden_size=16, neurons_per_class=2)
    images = torch.randint(0, 256, (10, 5, 5), dtype=torch.uint8)
    labels = torch.arange(10) % 10
    enc = RateEncoder(silent_steps=2, input_steps=30)
    got = ev.accuracy_by_encodings(model, images, labels, enc, [1, 3], 4, torch.Generator().manual_seed(5))
    # by hand: per batch of 4, three codings in turn from the same generator
    g = torch.Generator().manual_seed(5)
    want = {1: 0, 3: 0}
    with torch.no_grad():
        for start in range(0, 10, 4):
            x, y = images[start : start + 4], labels[start : start + 4]
            logits = [model(enc(x, generator=g)) for _ in range(3)]
            want[1] += int((logits[0].argmax(1) == y).sum())
            want[3] += int((sum(logits).argmax(1) == y).sum())
    assert got == {k: v / 10 for k, v in want.items()}

    # the script on a checkpoint written by train.py
    root = write_dataset(str(tmp_path / "data"), n_train=32, n_test=16)
    out = str(tmp_path / "run")
    res = run_cli(*tiny_run_args(root, out), "--trainable-readout")
    assert res.returncode == 0, res.stderr
    result = tmp_path / "eval.json"
    assert (
        ev.main(
            [
                "--checkpoint",
                os.path.join(out, "checkpoint.pt"),
                "--encodings",
                "1",
                "2",
                "--json",
                str(result),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    r = json.load(open(result))
    assert set(r["accuracy_by_encodings"]) == {"1", "2"} and r["images"] == 16 and r["epoch"] == 1
    assert all(0 <= v <= 1 for v in r["accuracy_by_encodings"].values())
    assert "2 coding(s) averaged" in capsys.readouterr().out
    assert ev.main(["--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "cannot read a train.py checkpoint" in capsys.readouterr().err
