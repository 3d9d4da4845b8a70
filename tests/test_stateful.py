"""The spikes-only form (inside torch.nn.Sequential) and the stateful form (state carried
across calls, reset_state / detach_state), with the peers' state helpers where installed
(snnTorch, SpikingJelly, Norse: skipped where they are not)."""

import copy
import warnings

import pytest
import torch
from torch import nn

import srcext
from srcext import SRC, SRCCell, SRCState

from helpers import requires_fused

BACKENDS = [pytest.param("fused", marks=requires_fused), "reference"]
F64 = torch.float64


def spikes(T, B, F, seed, p=0.4):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, F, generator=g) < p).to(F64)


def strong(m, gain=5.0):
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "weight" in name:
                p.mul_(gain)
    return m


@pytest.mark.parametrize("backend", BACKENDS)
def test_spikes_only_form_fits_in_sequential(backend):
    torch.manual_seed(0)
    src = strong(SRC(4, 6, 2, init_rate=None, backend=backend, dtype=F64))
    quiet = copy.deepcopy(src)
    quiet.return_state = False
    net = nn.Sequential(quiet, nn.Linear(6, 3).double())
    x = spikes(8, 2, 4, seed=1)
    out = net(x)
    assert out.shape == (8, 2, 3)
    assert torch.equal(out, net[1](src(x)[0]))
    cell = SRCCell(4, 6, init_rate=None, backend=backend, dtype=F64, return_state=False)
    assert cell(x[0]).shape == (2, 6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stateful_chunks_equal_one_call_and_reset(backend):
    torch.manual_seed(1)
    whole = strong(SRC(3, 5, 2, init_rate=None, backend=backend, dtype=F64))
    streaming = copy.deepcopy(whole)
    streaming.stateful, streaming.return_state = True, False
    x = spikes(20, 2, 3, seed=2)
    ref, ref_state = whole(x)
    chunks = [streaming(x[a:b]) for a, b in ((0, 7), (7, 8), (8, 20))]
    assert torch.allclose(torch.cat(chunks), ref, atol=1e-12)
    assert isinstance(streaming.state, SRCState)
    for a, b in zip(streaming.state, ref_state):
        assert torch.allclose(a, b, atol=1e-12)
    streaming.reset_state()
    assert streaming.state is None
    assert torch.equal(streaming(x[:7]), ref[:7])
    # an explicit state wins over the carried one
    out, _ = whole(x[:7], whole.initial_state(2))
    streaming.return_state = True
    assert torch.equal(streaming(x[:7], whole.initial_state(2))[0], out)
    with pytest.raises(ValueError, match="reset_state"):
        streaming(spikes(3, 4, 3, seed=3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_detach_state_truncates_backpropagation(backend):
    torch.manual_seed(2)
    m = strong(
        SRC(3, 5, init_rate=None, backend=backend, dtype=F64, stateful=True, return_state=False, detach_recurrent=False)
    )
    x1 = spikes(6, 2, 3, seed=4).requires_grad_()
    x2 = spikes(6, 2, 3, seed=5)
    m(x1)
    values = [s.clone() for s in m.state]
    m.detach_state()
    assert all(not s.requires_grad for s in m.state)
    assert all(torch.equal(a, b) for a, b in zip(m.state, values))
    out = m(x2)
    out.sum().backward()
    assert x1.grad is None  # no gradient into the earlier chunk
    assert m.weight_l0.grad is not None
    # without detaching, the gradient reaches the first chunk
    m.reset_state()
    x1.grad = None
    m(x1)
    (m(x2) + 0).sum().backward()
    assert x1.grad is not None and x1.grad.abs().sum() > 0


def test_model_wide_reset_and_detach():
    net = nn.Sequential(
        SRC(3, 4, stateful=True, return_state=False), nn.Linear(4, 4), SRC(4, 4, stateful=True, return_state=False)
    )
    x = spikes(5, 2, 3, seed=6).float()
    net(x)
    assert all(m.state is not None for m in (net[0], net[2]))
    srcext.detach_states(net)
    assert all(not s.requires_grad for s in net[2].state)
    srcext.reset_states(net)
    assert net[0].state is None and net[2].state is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_stateful_cell_step_loop_equals_layer(backend):
    """The snnTorch-style step loop: a stateful, spikes-only cell in nn.Sequential."""
    torch.manual_seed(3)
    layer = strong(SRC(4, 6, init_rate=None, backend=backend, dtype=F64))
    cell = SRCCell(4, 6, init_rate=None, backend=backend, dtype=F64, stateful=True, return_state=False)
    cell.load_state_dict({"weight": layer.weight_l0, "bias": layer.bias_l0})
    net = nn.Sequential(cell)
    x = spikes(12, 3, 4, seed=7)
    out = torch.stack([net(x[t]) for t in range(12)])
    ref, state = layer(x)
    assert (ref > 0).any()
    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.allclose(cell.state.hs, state.hs[0], atol=1e-12)


# ---- the peers --------------------------------------------------------------------------


def test_spikingjelly_reset_net_and_detach_net():
    functional = pytest.importorskip("spikingjelly.activation_based.functional")
    net = nn.Sequential(SRC(3, 4, stateful=True, return_state=False), nn.Linear(4, 2))
    x = spikes(5, 2, 3, seed=8).float()  # time-major, as SpikingJelly's multi-step mode
    first = net(x)
    net(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        functional.detach_net(net)
        assert not net[0].state.h.requires_grad
        functional.reset_net(net)
    assert net[0].state is None
    assert torch.equal(net(x), first)


def test_snntorch_step_loop_with_srcext_reset():
    snn = pytest.importorskip("snntorch")
    from snntorch import utils

    torch.manual_seed(4)
    net = nn.Sequential(
        nn.Linear(3, 5),
        snn.Leaky(beta=0.9, init_hidden=True),
        SRCCell(5, 4, stateful=True, return_state=False, weight_scale=8.0),
    )
    x = spikes(10, 2, 3, seed=9, p=0.8).float()

    def run():
        utils.reset(net)  # resets snnTorch's neurons only
        srcext.reset_states(net)  # and srcext's
        return torch.stack([net(x[t]) for t in range(10)])

    first = run()
    assert first.shape == (10, 2, 4)
    assert torch.equal(run(), first)


def test_norse_sequential_state_threads_the_state():
    norse = pytest.importorskip("norse.torch")
    torch.manual_seed(5)
    src = SRC(3, 4, weight_scale=6.0)
    net = norse.SequentialState(nn.Linear(3, 3), src)
    x = spikes(7, 2, 3, seed=10).float()
    out, states = net(x)
    assert states[0] is None and isinstance(states[1], SRCState)
    ref, ref_state = src(net[0](x))
    assert torch.equal(out, ref) and torch.equal(states[1].h, ref_state.h)
    out2, _ = net(x, states)  # continues from the returned state
    assert torch.equal(out2, src(net[0](x), ref_state)[0])
