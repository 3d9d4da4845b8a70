"""Property-based fuzzing of the fused ops against the reference (hypothesis): shapes, constants
over their valid ranges, every flag combination, memory layouts and requires_grad patterns.
``SRCEXT_FUZZ_EXAMPLES=10000 python -m pytest tests/test_fuzz.py`` runs a long campaign."""

import os

import pytest
import torch

from srcext.ops import src_recurrence_fused
from srcext.reference import SRCConstants, src_recurrence_reference

from helpers import FLAGS, assert_close, requires_fused

hypothesis = pytest.importorskip("hypothesis")  # skips this file only
from hypothesis import given, settings, strategies as st  # noqa: E402

pytestmark = requires_fused


FUZZ_EXAMPLES = int(os.environ.get("SRCEXT_FUZZ_EXAMPLES", "60"))


@st.composite
def fuzz_case(draw):
    T = draw(st.integers(0, 40))
    B = draw(st.integers(1, 5))
    H = draw(st.integers(1, 9))
    k = SRCConstants(
        alpha=draw(st.floats(0.0, 1.0)),
        # up to 3e4: rho scales the input tanh's error, where it must be relative (issue 37)
        rho=draw(st.one_of(st.floats(0.2, 5.0), st.floats(5.0, 3e4))),
        r=draw(st.floats(0.0, 3.0)),
        r_s=draw(st.floats(-8.0, 0.0)),
        z=draw(st.floats(0.0, 0.9)),
        z_hyp=draw(st.floats(0.0, 1.0)),
        z_dep=draw(st.floats(0.0, 1.0)),
        gate_slope=draw(st.floats(0.0, 20.0)),
        gate_threshold=draw(st.floats(-1.0, 1.0)),
        bias_max=draw(st.floats(-6.0, -3.0)),
    )
    detach, straight = draw(st.sampled_from(FLAGS))
    layout = draw(st.sampled_from(["contiguous", "transposed", "expanded", "strided"]))
    grads = draw(st.tuples(*[st.booleans()] * 5))
    seed = draw(st.integers(0, 2**31 - 1))
    return T, B, H, k, detach, straight, layout, grads, seed


def make_layout(t, layout):
    if layout == "transposed":  # same values, (T, H, B) memory order
        return t.transpose(1, 2).contiguous().transpose(1, 2)
    if layout == "expanded" and t.shape[1] > 0:  # one batch row broadcast over the batch
        return t[:, :1].expand_as(t)
    if layout == "strided":  # every other element of a larger buffer
        big = torch.zeros(t.shape[0], t.shape[1], 2 * t.shape[2], dtype=t.dtype)
        big[..., ::2] = t
        return big[..., ::2]
    return t


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True)
@given(fuzz_case())
def test_fuzz_fused_against_reference(case):
    T, B, H, k, detach, straight, layout, needs_grad, seed = case
    g = torch.Generator().manual_seed(seed)
    u = make_layout(torch.randn(T, B, H, generator=g, dtype=torch.float64) * 1.5, layout)
    bias = torch.full((H,), k.bias_max, dtype=torch.float64) - torch.rand(H, generator=g, dtype=torch.float64)
    state = [torch.randn(B, H, generator=g, dtype=torch.float64) * 0.5 for _ in range(3)]
    results = []
    for run in (src_recurrence_fused, src_recurrence_reference):
        leaves = [t.detach().clone() for t in [u, bias] + state]
        leaves[0] = make_layout(leaves[0].contiguous(), layout).detach()
        for t, flag in zip(leaves, needs_grad):
            t.requires_grad_(flag)
        spikes, final = run(leaves[0], leaves[1], tuple(leaves[2:]), k, detach, straight)
        outs = (spikes,) + final
        wanted = [t for t in leaves if t.requires_grad]
        grads = ()
        if wanted and any(o.requires_grad for o in outs):
            cot = [torch.randn(o.shape, generator=torch.Generator().manual_seed(1), dtype=o.dtype) for o in outs]
            loss = sum((o * c).sum() for o, c in zip(outs, cot) if o.requires_grad)
            grads = torch.autograd.grad(loss, wanted, allow_unused=True)
        results.append((outs, grads))
    (outs, grads), (ref_outs, ref_grads) = results
    for a, b in zip(outs, ref_outs):
        assert_close(a.detach(), b.detach(), 1e-9, "output")
    for a, b in zip(grads, ref_grads):
        assert_close(a, b, 1e-7, "gradient")
