"""SRCClassifier.from_config carries examples/train.py's --input-projection to every layer."""
import pytest
import torch

from srcext.models import SRCClassifier


@pytest.mark.parametrize("mode", ["dense", "sparse", "auto"])
def test_from_config_passes_input_projection_to_every_layer(mode):
    model = SRCClassifier.from_config(20, {"hidden_layers": 2, "hidden_size": 12,
                                           "neurons_per_class": 2, "input_projection": mode})
    assert [layer.input_projection for layer in model.layers] == [mode] * 3


def test_from_config_without_the_key_keeps_the_layer_default():
    # metrics.json / checkpoints written before the option existed
    model = SRCClassifier.from_config(20, {"hidden_size": 12, "neurons_per_class": 2})
    assert {layer.input_projection for layer in model.layers} == {"auto"}


def test_from_config_rejects_an_unknown_projection():
    with pytest.raises(ValueError, match="input_projection"):
        SRCClassifier.from_config(20, {"hidden_size": 12, "input_projection": "events"})
