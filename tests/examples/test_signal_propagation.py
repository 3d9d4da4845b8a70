"""examples/signal_propagation.py: the identity initialisation keeps the image in deep layers,
and the script's command line."""

import json

import torch

from srcext.data import RateEncoder
from srcext.models import SRCClassifier

from data_files import write_dataset
from example_runner import load_example


def test_identity_init_keeps_the_image_in_deep_layers():
    # the property the option exists for, measured as examples/signal_propagation.py does
    sp = load_example("signal_propagation")
    torch.manual_seed(1)
    images = torch.zeros(16, 64)
    for b in range(16):  # 16 different bar images
        images[b, (b * 4) % 64 : (b * 4) % 64 + 12] = 1.0
    images = (images * 255).to(torch.uint8)
    enc = RateEncoder(input_steps=120)
    result = {}
    for init in ("uniform", "identity"):
        torch.manual_seed(0)
        model = SRCClassifier(64, hidden_layers=6, hidden_size=64, hidden_init=init)
        rows = sp.count_statistics(model, images, enc, torch.Generator().manual_seed(0))
        assert len(rows) == 7 and all(0 <= r["firing_rate"] <= 1 for r in rows)
        result[init] = rows[5]["image_variance"]  # hidden layer 6
    assert result["identity"] > 5 * result["uniform"], result


def test_signal_propagation_cli(tmp_path, capsys):
    root = write_dataset(str(tmp_path / "data"), n_train=8, n_test=8)
    sp = load_example("signal_propagation")
    out = tmp_path / "rows.json"
    assert (
        sp.main(["--data-dir", root, "--hidden-layers", "2", "--hidden-size", "8", "--images", "4", "--json", str(out)])
        == 0
    )
    assert "hidden 2" in capsys.readouterr().out
    assert len(json.load(open(out))) == 3
