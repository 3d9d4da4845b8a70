"""output="voltage": the last layer emits its membrane voltage h at every step (the per-step
readout), on the fused CPU kernels and the emulated CUDA kernels, against the reference."""

import pytest
import torch

import srcext
from srcext import SRC, SRCCell
from srcext.ops import src_recurrence_fused
from srcext.reference import SRCConstants, src_recurrence_reference

import cuda_emulation
from helpers import FLAG_IDS, FLAGS, random_constants, rel_err, requires_fused

pytestmark = requires_fused


def emulated(*args, **kwargs):
    return cuda_emulation.src_recurrence(*args, **kwargs)


def inputs(T, B, H, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(T, B, H, generator=g, dtype=torch.float64) * 2
    bias = torch.full((H,), -5.0, dtype=torch.float64) + torch.rand(H, generator=g, dtype=torch.float64)
    state = tuple(torch.randn(B, H, generator=g, dtype=torch.float64) * 0.3 for _ in range(3))
    return [t.to(dtype).requires_grad_() for t in (u, bias) + state]


def outputs_and_grads(fn, leaves, k, detach, st, lengths):
    out, final = fn(leaves[0], leaves[1], tuple(leaves[2:]), k, detach, st, lengths=lengths, emit_voltage=True)
    outs = (out,) + tuple(final)
    g = torch.Generator().manual_seed(5)
    cot = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype) for o in outs]
    loss = sum((o * c).sum() for o, c in zip(outs, cot))
    # detach_recurrent: h0 and hs0 get no gradient (zeros here, on both sides)
    grads = torch.autograd.grad(loss, leaves, allow_unused=True, materialize_grads=True)
    return outs, grads


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("backend", ["cpu", "cuda_emulation"])
def test_voltage_matches_reference(backend, detach, st, with_lengths):
    fn = src_recurrence_fused if backend == "cpu" else emulated
    k = random_constants(3)
    T, B, H = 37, 3, 29
    lengths = torch.tensor([37, 20, 0]) if with_lengths else None
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-4)):
        leaves = inputs(T, B, H, dtype, seed=1)
        outs, grads = outputs_and_grads(fn, leaves, k, detach, st, lengths)
        ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
        ref_outs, ref_grads = outputs_and_grads(src_recurrence_reference, ref_leaves, k, detach, st, lengths)
        assert (outs[0] < 0).any()  # a voltage, not spikes
        for label, a, b in zip(("h", "i_n", "h_n", "hs_n"), outs, ref_outs):
            assert rel_err(a, b) <= tol, (label, rel_err(a, b))
        for label, a, b in zip(("u", "bias", "i0", "h0", "hs0"), grads, ref_grads):
            bound = tol if detach else max(tol, 1e-3 if dtype == torch.float32 else tol)
            assert rel_err(a, b) <= bound, (label, rel_err(a, b))
        if lengths is not None:
            assert torch.all(outs[0][20:, 1] == 0) and torch.all(outs[0][:, 2] == 0)  # 0 past a length


def test_voltage_gradcheck_float64():
    k = SRCConstants()
    leaves = inputs(9, 2, 3, torch.float64, seed=2)

    def f(*leaves):
        out, final = src_recurrence_fused(leaves[0], leaves[1], tuple(leaves[2:]), k, False, False, emit_voltage=True)
        return (out,) + tuple(final)

    assert torch.autograd.gradcheck(f, leaves)


def test_voltage_is_what_the_spikes_rectify():
    """The spikes of a layer are relu of its voltage, on both backends, and only the last layer
    emits a voltage (the layers below pass spikes on: the same outputs downstream)."""
    torch.manual_seed(0)
    spikes = SRC(12, 10, 2, bidirectional=True, init_rate=None, weight_scale=4.0)
    voltage = SRC(12, 10, 2, bidirectional=True, init_rate=None, weight_scale=4.0, output="voltage")
    voltage.load_state_dict(spikes.state_dict())
    x = (torch.rand(25, 4, 12) < 0.3).float()
    lengths = torch.tensor([25, 11, 3, 25])
    for backend in ("fused", "reference"):
        spikes.backend = voltage.backend = backend
        s, s_state = spikes(x, lengths=lengths)
        v, v_state = voltage(x, lengths=lengths)
        assert torch.equal(torch.relu(v), s) and (v < 0).any()
        for a, b in zip(v_state, s_state):
            assert torch.equal(a, b)


def test_cell_voltage_matches_the_layer():
    torch.manual_seed(0)
    layer = SRC(6, 5, output="voltage", init_rate=None, weight_scale=3.0)
    cell = SRCCell(6, 5, output="voltage", init_rate=None, weight_scale=3.0)
    cell.weight.data.copy_(layer.weight_l0)
    x = torch.randn(8, 2, 6)
    out, _ = layer(x)
    state = None
    for t in range(8):
        h, state = cell(x[t], state)
        torch.testing.assert_close(h, out[t])


def test_firing_rates_of_a_voltage_layer_count_spikes():
    torch.manual_seed(0)
    layer = SRC(6, 5, output="voltage")
    x = torch.randn(40, 3, 6)
    layer(x)  # the data init, counting h > 0 as spikes
    assert 0.0 < srcext.firing_rates(layer, x)["l0"] < 0.2


def test_bad_output_is_refused():
    with pytest.raises(ValueError, match="output must be one of"):
        SRC(3, 4, output="membrane")
