"""examples/train.py's --input-projection reaches every layer of SRCClassifier, and the
classifier's own config (what checkpoints store) keeps it."""

import json

import pytest

from srcext.models import SRCClassifier


@pytest.mark.parametrize("mode", ["dense", "sparse", "auto"])
def test_input_projection_reaches_every_layer_and_its_config(mode):
    model = SRCClassifier(20, hidden_layers=2, hidden_size=12, neurons_per_class=2, input_projection=mode)
    assert [layer.input_projection for layer in model.layers] == [mode] * 3
    again = SRCClassifier.from_config(json.loads(json.dumps(model.config())))
    assert [layer.input_projection for layer in again.layers] == [mode] * 3


def test_a_config_without_the_key_keeps_the_layer_default():
    # checkpoints written before the option existed
    model = SRCClassifier.from_config({"input_size": 20, "hidden_size": 12, "neurons_per_class": 2})
    assert {layer.input_projection for layer in model.layers} == {"auto"}


def test_an_unknown_projection_is_refused():
    with pytest.raises(ValueError, match="input_projection"):
        SRCClassifier(20, hidden_size=12, input_projection="events")
