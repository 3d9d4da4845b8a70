"""Numerics of the fused op and layer: non-finite input stays in its neuron, bitwise
determinism, CPU autocast to bfloat16 against the float64 reference."""

import copy

import pytest
import torch

from srcext import SRC
from srcext.ops import src_recurrence_fused
from srcext.reference import SRCConstants, src_recurrence_reference

from helpers import rel_err, requires_fused

pytestmark = requires_fused


@pytest.mark.parametrize("backend", ["fused", "reference"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_propagates_without_crash(backend, bad):
    """NaN (or an Inf that makes NaN) in the drive of one neuron shows in that neuron's
    outputs from then on, as in the reference; other neurons are untouched."""
    torch.manual_seed(0)
    u = torch.randn(12, 2, 5, dtype=torch.float64)
    u[4, 1, 3] = bad
    state = tuple(torch.zeros(2, 5, dtype=torch.float64) for _ in range(3))
    bias = torch.full((5,), -5.0, dtype=torch.float64)
    run = src_recurrence_fused if backend == "fused" else src_recurrence_reference
    spikes, (i_n, h_n, hs_n) = run(u, bias, state, SRCConstants())
    ref, ref_state = src_recurrence_reference(u, bias, state, SRCConstants())
    assert torch.equal(torch.isnan(spikes), torch.isnan(ref))
    if bad != bad:  # NaN
        assert torch.isnan(spikes[4:, 1, 3]).all() and torch.isnan(i_n[1, 3])
    clean = torch.ones_like(spikes, dtype=torch.bool)
    clean[:, 1, 3] = False
    assert torch.allclose(spikes[clean], ref[clean], atol=1e-12)


def test_forward_and_backward_are_bitwise_deterministic():
    torch.manual_seed(0)
    model = SRC(10, 70, 2, backend="fused", weight_scale=5.0)
    x = (torch.rand(40, 6, 10) < 0.4).float()
    runs = []
    for _ in range(3):
        model.zero_grad()
        out, state = model(x)
        (out.sum() + state.h.sum()).backward()
        runs.append([out, *state] + [p.grad.clone() for p in model.parameters()])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)


def test_cpu_autocast_bfloat16():
    """Under CPU autocast the GEMM runs in bfloat16 and so does the recurrence's storage
    (float32 math inside); forward and backward run without dtype errors and stay close to
    the float64 reference."""
    torch.manual_seed(0)
    model = SRC(16, 24, 2, backend="fused", weight_scale=5.0)
    ref = copy.deepcopy(model).double()
    ref.backend = "reference"
    x = (torch.rand(20, 4, 16) < 0.4).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = model(x)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    rout, _ = ref(x.double())
    rout.sum().backward()
    assert rel_err(out.float(), rout) < 0.1
    for g, rp in zip(grads, ref.parameters()):
        cos = torch.nn.functional.cosine_similarity(g.double().flatten(), rp.grad.flatten(), dim=0)
        assert cos > 0.9
