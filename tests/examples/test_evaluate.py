"""examples/evaluate.py: averaging the logits of several codings, and the script on a checkpoint
written by train.py."""

import glob
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

    # --draws: further single codings with their own seeds, beside train.py's number
    draws_file = tmp_path / "draws.json"
    checkpoint = os.path.join(out, "checkpoint.pt")
    args = ["--checkpoint", checkpoint, "--encodings", "1", "2", "--seed", "3", "--threads", "1"]
    assert ev.main([*args, "--json", str(result), "--draws", "2", "--draws-json", str(draws_file)]) == 0
    d = json.load(open(draws_file))
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert [x["seed"] for x in d["draws"]] == [None, 3, 4, 5]
    assert d["draws"][0]["accuracy"] == metrics["test_accuracy"]
    assert d["draws"][1]["accuracy"] == json.load(open(result))["accuracy_by_encodings"]["1"]
    assert d["draws"][1]["source"] == "examples/evaluate.py --encodings 1 2"
    for x in d["draws"][2:]:  # each extra draw is a one-coding evaluation with its seed
        assert ev.main([*args[:2], "--encodings", "1", "--seed", str(x["seed"]), "--json", str(result)]) == 0
        assert x["accuracy"] == json.load(open(result))["accuracy_by_encodings"]["1"]
    values = [x["accuracy"] for x in d["draws"]]
    assert d["min"] == min(values) and d["max"] == max(values) and d["images"] == 16
    assert d["mean"] == pytest.approx(sum(values) / 4, abs=1e-5)
    assert ev.main([*args[:2], "--encodings", "2", "--draws-json", str(draws_file)]) == 2
    assert "needs 1 among --encodings" in capsys.readouterr().err
    assert ev.main([*args[:2], "--draws", "-1"]) == 2
    assert ev.main(["--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "cannot read a train.py checkpoint" in capsys.readouterr().err


def test_committed_single_coding_draws_agree_with_their_statistics():
    ev = load_example("evaluate")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    files = glob.glob(os.path.join(root, "examples", "results", "**", "single_coding_draws.json"), recursive=True)
    assert len(files) >= 3
    for path in files:
        d = json.load(open(path))
        values = [x["accuracy"] for x in d["draws"]]
        assert {k: d[k] for k in ("mean", "stdev", "min", "max")} == ev.spread(values), path
        metrics = json.load(open(os.path.join(os.path.dirname(path), "metrics.json")))
        assert d["draws"][0]["accuracy"] == metrics["test_accuracy"], path  # the headline is the first draw
