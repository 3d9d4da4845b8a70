"""examples/summarize_results.py: the results table from metrics.json files, and the tables of
docs/results.md regenerated from the committed JSON."""

import json
import os

import pytest

from example_runner import ROOT, load_example


def test_summarize_results_table(tmp_path, capsys):
    summarize = load_example("summarize_results")
    for name, layers, acc in (("a", 1, 0.9712), ("deep/b", 10, 0.5)):
        os.makedirs(tmp_path / name)
        metrics = {
            "test_accuracy": acc,
            "epochs": 3,
            "wall_time_s": 600.0,
            "firing_rate": [0.03, 0.05],
            "parameters": 1234,
            "val_accuracy_per_epoch": [0.8, 0.81],
            "config": {"dataset": "mnist", "hidden_layers": layers, "hidden_size": 128},
        }
        with open(tmp_path / name / "metrics.json", "w") as f:
            json.dump(metrics, f)
    # a run trained on from run a's checkpoint, with several codings evaluated
    os.makedirs(tmp_path / "a_on")
    metrics["config"] = {
        "dataset": "mnist",
        "hidden_layers": 1,
        "hidden_size": 128,
        "init_from": str(tmp_path / "a" / "checkpoint.pt"),
    }
    with open(tmp_path / "a_on" / "metrics.json", "w") as f:
        json.dump(metrics, f)
    with open(tmp_path / "a_on" / "evaluate_encodings.json", "w") as f:
        json.dump({"accuracy_by_encodings": {"1": 0.5, "5": 0.98765}}, f)
    assert summarize.main(["--root", str(tmp_path), "--json", str(tmp_path / "s.json")]) == 0
    table = capsys.readouterr().out
    assert "| a | mnist | hidden 1 x 128 | 3 | 97.12 % | 81.00 % | 10 min | 3.0, 5.0 % | 1,234 |  |" in table
    assert "| a_on | mnist | hidden 1 x 128 | 3 + 3 | 50.00 % |" in table and "| 98.77 % (5) |" in table
    assert "deep/b" in table
    rows = json.load(open(tmp_path / "s.json"))
    assert [r["run"] for r in rows] == ["a", "a_on", "deep/b"] and rows[2]["hidden_layers"] == 10
    assert summarize.main(["--root", str(tmp_path / "nothing")]) == 1


def test_training_column_names_the_regularisation(tmp_path):
    summarize = load_example("summarize_results")
    regular = {"weight_decay": 0.05, "augment_flip": True, "dropout": 0.2, "trainable_readout": True}
    for name, extra in (("plain", {"weight_decay": 0.0, "dropout": 0.0}), ("regular", regular)):
        os.makedirs(tmp_path / name)
        config = {"dataset": "fashion-mnist", "hidden_layers": 1, "hidden_size": 64, "lr": 1e-3, **extra}
        with open(tmp_path / name / "metrics.json", "w") as f:
            json.dump({"test_accuracy": 0.5, "epochs": 1, "config": config}, f)
    training = {r["run"]: summarize._training(r) for r in summarize.load_runs(str(tmp_path))}
    assert "`--augment-flip`" in training["regular"] and "`--weight-decay 0.05`" in training["regular"]
    assert "`--dropout 0.2`" in training["regular"] and "`--trainable-readout`" in training["regular"]
    assert not any(word in training["plain"] for word in ("flip", "decay", "dropout", "readout"))


def test_training_column_names_a_schedule_change(tmp_path):
    summarize = load_example("summarize_results")
    os.makedirs(tmp_path / "cut")
    config = {"dataset": "mnist", "hidden_layers": 1, "hidden_size": 64, "lr": 1e-3, "lr_schedule": "cosine"}
    change = {"after_epoch": 4, "epochs_before": 20, "epochs": 16}
    with open(tmp_path / "cut" / "metrics.json", "w") as f:
        json.dump({"test_accuracy": 0.5, "epochs": 16, "config": config, "schedule_changes": [change]}, f)
    (run,) = summarize.load_runs(str(tmp_path))
    assert summarize._training(run).startswith("lr 1e-3 cosine (planned for 20 epochs, 16 from epoch 5), float32")
    # Extended again later: every change, in order.
    changes = [change, {"after_epoch": 16, "epochs_before": 16, "epochs": 30}]
    with open(tmp_path / "cut" / "metrics.json", "w") as f:
        json.dump({"test_accuracy": 0.5, "epochs": 30, "config": config, "schedule_changes": changes}, f)
    (run,) = summarize.load_runs(str(tmp_path))
    expected = "lr 1e-3 cosine (planned for 20 epochs, 16 from epoch 5, 30 from epoch 17), float32"
    assert summarize._training(run).startswith(expected)


def test_results_doc_tables_are_current():
    """docs/results.md's tables are what the committed JSON gives (regenerate them with
    examples/summarize_results.py --update docs/results.md)."""
    summarize = load_example("summarize_results")
    assert summarize.main(["--check", os.path.join(ROOT, "docs", "results.md")]) == 0


def test_update_rewrites_only_marked_tables(tmp_path, capsys):
    summarize = load_example("summarize_results")
    text = "intro\n<!-- results:a -->\n| old |\n<!-- /results:a -->\nkept\n"
    assert summarize.update(text, {"a": "| new |"}) == "intro\n<!-- results:a -->\n| new |\n<!-- /results:a -->\nkept\n"
    with pytest.raises(KeyError, match="unknown table 'a'"):
        summarize.update(text, {"b": "| x |"})
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- results:runs -->\nstale\n<!-- /results:runs -->\n")
    assert summarize.main(["--check", str(doc)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert summarize.main(["--update", str(doc)]) == 0
    assert summarize.main(["--check", str(doc)]) == 0 and "| mnist_1x512_shift2 |" in doc.read_text()
