"""No silent layer: the bias is never frozen above bias_max, firing rates can be read per
layer, and calibrate_ brings silent layers to a target firing rate."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import srcext
from srcext import SRC, SRCCell
from srcext.bias import cell_bias

from helpers import requires_fused

BACKENDS = [pytest.param("fused", marks=requires_fused), "reference"]


# ---- the bias ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_above_bias_max_still_gets_gradient(backend):
    torch.manual_seed(0)
    x = (torch.rand(20, 4, 6) < 0.5).double()
    grads = {}
    for straight in (True, False):
        m = SRC(6, 5, backend=backend, dtype=torch.float64, weight_scale=6.0, bias_straight_through=straight)
        with torch.no_grad():
            m.bias_l0.zero_()  # a common init loop: zeros for every bias*
        clamped = copy.deepcopy(m)
        with torch.no_grad():
            clamped.bias_l0.fill_(m.constants.bias_max)
        out, _ = m(x)
        assert torch.equal(out, clamped(x)[0])  # the forward value is min(b, bias_max)
        (g,) = torch.autograd.grad(out.sum(), [m.bias_l0])
        (g_at_max,) = torch.autograd.grad(clamped(x)[0].sum(), [clamped.bias_l0])
        grads[straight] = (g, g_at_max)
    g, g_at_max = grads[True]
    assert (g > 0).all() and torch.equal(g, g_at_max)  # more spikes with more bias
    assert torch.count_nonzero(grads[False][0]) == 0  # the spec's clamp: frozen


def test_bias_gradient_above_max_only_where_it_lowers_b():
    b = torch.tensor([-6.0, -6.0, 0.0, 0.0], requires_grad=True)
    out = cell_bias(b, -4.0)
    assert torch.equal(out, torch.tensor([-6.0, -6.0, -4.0, -4.0]))
    (g,) = torch.autograd.grad(out, b, torch.tensor([1.0, -1.0, 1.0, -1.0]))
    assert torch.equal(g, torch.tensor([1.0, -1.0, 1.0, 0.0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_initialised_bias_trains_back_below_bias_max(backend):
    torch.manual_seed(1)
    m = SRC(8, 6, backend=backend, weight_scale=6.0)
    with torch.no_grad():
        m.bias_l0.zero_()
    opt = torch.optim.Adam(m.parameters(), lr=0.2)
    x = (torch.rand(30, 4, 8) < 0.5).float()
    start = m(x)[0].sum().item()
    for _ in range(40):  # a loss that asks for fewer spikes
        opt.zero_grad()
        m(x)[0].sum().backward()
        opt.step()
    assert (m.bias_l0 < m.constants.bias_max).all()
    assert m(x)[0].sum().item() < start


# ---- firing rates and calibration -------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_firing_rates_per_layer_and_direction(backend):
    torch.manual_seed(2)
    net = nn.Sequential(SRC(5, 6, 2, bidirectional=True, return_state=False, backend=backend, weight_scale=6.0))
    x = (torch.rand(9, 3, 5) < 0.5).float()
    lengths = torch.tensor([9, 5, 2])
    rates = srcext.firing_rates(net, pack_padded_sequence(x, lengths))
    assert list(rates) == ["0.l0", "0.l0_reverse", "0.l1", "0.l1_reverse"]
    # by hand for the last layer's forward direction: only steps within each length count
    captured = {}
    net[0]._spike_recorder = lambda m, suffix, s, n: captured.setdefault(suffix, s)
    net[0](x, lengths=lengths)
    net[0]._spike_recorder = None
    s = captured["l1"]
    fired = sum(int((s[:n, b] > 0).sum()) for b, n in enumerate(lengths.tolist()))
    assert rates["0.l1"] == pytest.approx(fired / (int(lengths.sum()) * 6))
    assert 0 < rates["0.l1"] < 1


def silent_cases():
    g = torch.Generator().manual_seed(3)
    sparse = (torch.rand(100, 16, 700, generator=g) < 0.02).float()  # 700 ch at 2 %
    embeddings = torch.empty(100, 16, 64).uniform_(-0.1, 0.1, generator=g)  # U(-0.1, 0.1)
    pixels = torch.rand(100, 16, 28, generator=g)  # raw intensities
    return {"sparse-spikes": sparse, "small-embeddings": embeddings, "pixels": pixels}


@requires_fused
@pytest.mark.parametrize("case", ["sparse-spikes", "small-embeddings", "pixels"])
def test_calibrate_brings_silent_layers_to_target(case):
    x = silent_cases()[case]
    torch.manual_seed(4)
    for initial_state in ("zeros", "rest"):
        m = SRC(x.shape[-1], 128, backend="fused", initial_state=initial_state)
        before = srcext.firing_rates(m, x)["l0"]
        if case != "pixels":
            assert before < 0.002  # silent as the issue reports
        report = srcext.calibrate_(m, x, target_rate=0.05)
        after = srcext.firing_rates(m, x)["l0"]
        assert after == pytest.approx(0.05, rel=0.1)
        assert report["l0"]["rate"] == pytest.approx(after)
        assert report["l0"]["rate_before"] == pytest.approx(before)


@requires_fused
def test_calibrate_layer_by_layer_anywhere_in_a_model_deterministic():
    torch.manual_seed(5)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(20, 16)
            self.rnn = SRC(16, 24, 2, bidirectional=True, dropout=0.3, backend="fused")
            self.cell = SRCCell(48, 10, backend="fused", stateful=True, return_state=False)

        def forward(self, x):
            out, _ = self.rnn(self.embed(x))
            return torch.stack([self.cell(out[t]) for t in range(out.shape[0])])

    net = Net().train()
    x = torch.rand(25, 4, 20)
    twin = copy.deepcopy(net)
    report = srcext.calibrate_(net, x, target_rate=0.04)
    assert list(report) == ["rnn.l0", "rnn.l0_reverse", "rnn.l1", "rnn.l1_reverse", "cell"]
    assert net.training and net.cell.state is None  # mode and carried state restored
    net.eval()
    rates = srcext.firing_rates(net, x)
    srcext.reset_states(net)
    for name, rate in rates.items():
        assert rate == pytest.approx(0.04, rel=0.1), name
    srcext.calibrate_(twin, x, target_rate=0.04)
    for a, b in zip(net.state_dict().values(), twin.state_dict().values()):
        assert torch.equal(a, b)


def test_calibrate_arguments_and_unreachable_target():
    with pytest.raises(ValueError, match="target_rate"):
        srcext.calibrate_(SRC(3, 4), torch.zeros(5, 1, 3), target_rate=1.5)
    with pytest.raises(ValueError, match="no srcext"):
        srcext.calibrate_(nn.Linear(3, 4), torch.zeros(5, 3))
    m = SRC(3, 4)
    with pytest.warns(UserWarning, match="l0 fires at 0.0000"):
        report = srcext.calibrate_(m, torch.zeros(5, 2, 3), max_evaluations=6)
    assert report["l0"]["rate"] == 0.0
