"""srcext.models.SRCClassifier: shapes, the fixed readout and its integrator, the hidden
initialisations, the config round trip, and a few training steps that learn."""

import json

import numpy as np
import pytest
import torch

from srcext.data import RateEncoder, load_idx_dataset
from srcext.models import SRCClassifier, fixed_readout

from data_files import write_dataset
from helpers import NON_DEFAULT_CLASSIFIER, requires_fused


def test_fixed_readout_and_model_shapes():
    r = fixed_readout(3, 2)
    assert torch.equal(
        r,
        torch.tensor([[1, 1, -0.1, -0.1, -0.1, -0.1], [-0.1, -0.1, 1, 1, -0.1, -0.1], [-0.1, -0.1, -0.1, -0.1, 1, 1]]),
    )
    model = SRCClassifier(12, num_classes=3, hidden_layers=2, hidden_size=7, neurons_per_class=2)
    assert not any(p is model.readout for p in model.parameters())
    x = (torch.rand(15, 5, 12) < 0.3).float()
    logits, spikes = model(x, return_spikes=True)
    assert logits.shape == (5, 3)
    assert [s.shape for s in spikes] == [(15, 5, 7), (15, 5, 7), (15, 5, 6)]
    rates = SRCClassifier.firing_rates(spikes)
    assert len(rates) == 3 and all(0 <= r <= 1 for r in rates)
    # the logits are the leaky integrator of readout . s_out at the last step
    a = model.readout_decay
    R = torch.zeros(5, 3)
    for t in range(15):
        R = a * R + spikes[-1][t] @ model.readout.t()
    assert torch.allclose(logits, R, atol=1e-5)


def test_readout_integrator_is_float32_under_autocast():
    # bfloat16 would round a = 0.99 to 0.988 and lose exact step counts beyond 256
    torch.manual_seed(0)
    model = SRCClassifier(12, num_classes=2, hidden_layers=0, neurons_per_class=3, weight_scale=8.0)
    x = (torch.rand(300, 4, 12) < 0.3).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, spikes = model(x, return_spikes=True)
    assert spikes[-1].dtype == torch.bfloat16 and logits.dtype == torch.float32
    s = spikes[-1].double()
    assert s.sum() > 0
    R = torch.zeros(4, 2, dtype=torch.float64)
    for t in range(300):
        R = 0.99 * R + s[t] @ model.readout.double().t()
    assert torch.allclose(logits.double(), R, rtol=1e-5, atol=1e-4)


def test_training_steps_lower_the_loss(tmp_path):
    torch.manual_seed(0)
    write_dataset(str(tmp_path), n_train=64)
    images, labels = load_idx_dataset("mnist", "train", str(tmp_path), download_missing=False)
    enc = RateEncoder(input_steps=40, silent_steps=5)
    model = SRCClassifier(784, hidden_layers=1, hidden_size=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(enc(images, generator=g)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def test_identity_hidden_init():
    torch.manual_seed(0)
    uniform = SRCClassifier(20, hidden_layers=3, hidden_size=16, weight_scale=4.0)
    torch.manual_seed(0)
    ident = SRCClassifier(
        20,
        hidden_layers=3,
        hidden_size=16,
        weight_scale=4.0,
        hidden_init="identity",
        identity_gain=3.0,
        identity_noise=0.25,
    )
    w_u = [layer.weight_l0 for layer in uniform.layers]
    w_i = [layer.weight_l0 for layer in ident.layers]
    # input -> hidden 1 and hidden 3 -> output keep the uniform init
    assert torch.equal(w_u[0], w_i[0]) and torch.equal(w_u[3], w_i[3])
    for k in (1, 2):  # the square hidden -> hidden layers
        assert torch.allclose(w_i[k], 3.0 * torch.eye(16) + 0.25 * w_u[k])
    with pytest.raises(ValueError, match="hidden_init"):
        SRCClassifier(20, hidden_init="orthogonal")


def test_dropout_acts_between_layers_in_training_only():
    torch.manual_seed(0)
    p = 0.5
    model = SRCClassifier(12, num_classes=3, hidden_layers=2, hidden_size=64, neurons_per_class=2, dropout=p)
    plain = SRCClassifier(12, num_classes=3, hidden_layers=2, hidden_size=64, neurons_per_class=2)
    plain.load_state_dict(model.state_dict())
    assert model.config()["dropout"] == p and SRCClassifier.from_config(model.config()).dropout == p
    x = (torch.rand(30, 6, 12) < 0.5).float()
    inputs = {}
    for k, layer in enumerate(model.layers):
        layer.register_forward_pre_hook(lambda module, args, k=k: inputs.__setitem__(k, args[0].detach()))
    model.eval()
    assert torch.equal(model(x), plain(x))  # no dropout outside training
    model.train()
    logits, spikes = model(x, return_spikes=True)
    assert torch.equal(inputs[0], x)  # the input is not dropped
    for k in (1, 2):  # each layer above the first gets the spikes below, zeroed or scaled
        below, got = spikes[k - 1].detach(), inputs[k]
        fired = below > 0
        assert fired.sum() > 200
        kept = got[fired] != 0
        assert torch.equal(got[fired][kept], below[fired][kept] / (1 - p))
        assert torch.all(got[~fired] == 0)
        # one mask per (sample, neuron) for the whole sequence: a neuron that fired is
        # either silenced at every step or kept at every step
        active = fired.any(0)  # (B, N)
        assert active.sum() > 100
        kept_steps = (got != 0).sum(0)[active]
        fired_steps = fired.sum(0)[active]
        silenced = kept_steps == 0
        assert torch.equal(kept_steps[~silenced], fired_steps[~silenced])
        assert 0.38 < silenced.float().mean() < 0.62
    logits.sum().backward()
    assert all(layer.weight_l0.grad.abs().sum() > 0 for layer in model.layers)
    with pytest.warns(UserWarning, match="does nothing with hidden_layers=0"):
        SRCClassifier(12, hidden_layers=0, dropout=0.2)
    for bad in (1.0, -0.1, True, "0.1"):
        with pytest.raises(ValueError, match="dropout must be a number in \\[0, 1\\)"):
            SRCClassifier(12, dropout=bad)


@requires_fused
def test_dropped_and_scaled_spikes_project_the_same_from_events():
    # dropout leaves spikes of 1 / (1 - p): the event-driven projection must read their values
    kw = dict(num_classes=3, hidden_layers=2, hidden_size=32, neurons_per_class=2, dropout=0.3)
    torch.manual_seed(0)
    events = SRCClassifier(12, input_projection="sparse", **kw)
    dense = SRCClassifier(12, input_projection="dense", **kw)
    dense.load_state_dict(events.state_dict())
    x = (torch.rand(30, 6, 12) < 0.5).float()
    out = []
    for model in (events, dense):
        torch.manual_seed(5)  # the same dropout masks
        logits = model(x)
        logits.square().sum().backward()
        out.append((logits, [p.grad for p in model.parameters()]))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-5, atol=1e-5)
    assert out[0][0].abs().sum() > 0
    for a, b in zip(out[0][1], out[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_classifier_config_rebuilds_the_model():
    model = SRCClassifier(20, num_classes=4, **NON_DEFAULT_CLASSIFIER)
    cfg = model.config()
    assert json.loads(json.dumps(cfg)) == cfg  # storable as it is
    assert cfg["input_size"] == 20 and cfg["num_classes"] == 4 and cfg["detach_recurrent"] is False
    again = SRCClassifier.from_config(cfg)
    assert [tuple(layer.weight_l0.shape) for layer in again.layers] == [(12, 20), (12, 12), (12, 12)]
    assert isinstance(again.readout, torch.nn.Parameter) and again.readout_decay == 0.95
    assert again.layers[0].detach_recurrent is False and again.config() == cfg
    again.load_state_dict(model.state_dict())  # same keys and shapes
    x = (torch.rand(15, 4, 20) < 0.3).float()
    assert torch.equal(again(x), model(x))
    cfg["not_an_option"] = 1
    with pytest.raises(TypeError, match="not_an_option"):
        SRCClassifier.from_config(cfg)
