"""examples/common.py: a train.py checkpoint back into a model and its encoder, including the
checkpoints written before the model stored its own config, and portable paths."""

import os

import pytest
import torch

from srcext.models import SRCClassifier

from example_runner import load_example
from helpers import NON_DEFAULT_CLASSIFIER

common = load_example("common")


def test_classifier_from_config_rebuilds_a_checkpointed_model(tmp_path):
    """A checkpoint of the older format (train.py's options only, no model_config): the
    training-only options are ignored, the model options rebuild the architecture."""
    options = {
        **NON_DEFAULT_CLASSIFIER,
        "lr": 0.1,
        "dataset": "mnist",
        "gain": 0.5,
        "silent_steps": 4,
        "steps": 30,
    }
    torch.manual_seed(0)
    model = SRCClassifier(784, **NON_DEFAULT_CLASSIFIER)
    path = str(tmp_path / "checkpoint.pt")
    torch.save({"model": model.state_dict(), "config": options, "epoch": 3}, path)
    ckpt, loaded, encoder = common.load_checkpoint(path)
    assert ckpt["epoch"] == 3
    assert [tuple(layer.weight_l0.shape) for layer in loaded.layers] == [(12, 784), (12, 12), (30, 12)]
    assert isinstance(loaded.readout, torch.nn.Parameter) and loaded.readout_decay == 0.95
    assert loaded.layers[0].detach_recurrent is False
    x = (torch.rand(15, 4, 784) < 0.3).float()
    assert torch.equal(loaded(x), model(x))
    assert (encoder.gain, encoder.silent_steps, encoder.input_steps) == (0.5, 4, 30)
    # the current format: the model's own config, whatever train.py's options are called
    torch.save(
        {
            "model": model.state_dict(),
            "model_config": model.config(),
            "config": {"dataset": "mnist", "gain": 0.5, "silent_steps": 4, "steps": 30},
        },
        path,
    )
    _, loaded, _ = common.load_checkpoint(path)
    assert torch.equal(loaded(x), model(x))


def test_unreadable_checkpoints_raise_usage_errors(tmp_path):
    with pytest.raises(common.UsageError, match="cannot read a train.py checkpoint"):
        common.load_checkpoint(str(tmp_path / "missing.pt"))
    torch.save({"model": {}}, tmp_path / "no_config.pt")
    with pytest.raises(common.UsageError, match="cannot read a train.py checkpoint"):
        common.load_checkpoint(str(tmp_path / "no_config.pt"))


def test_portable_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inside = str(tmp_path / "runs" / "a")
    assert common.portable_path(inside) == os.path.join("runs", "a")
    assert common.portable_path("data") == "data" and common.portable_path(None) is None
    options = common.portable_options({"out": inside, "data_dir": "/", "lr": 0.1})
    assert options["out"] == os.path.join("runs", "a") and options["lr"] == 0.1
    assert not os.path.isabs(options["data_dir"])
    assert os.path.normpath(os.path.join(str(tmp_path), options["data_dir"])) == "/"
