"""Variable lengths in the fused ops and the reference: sample b runs only its first
lengths[b] steps. Everything is checked against running each sample alone on its own prefix
u[:lengths[b], b] with the reference, which is what the semantics promise."""

import pytest
import torch

import srcext
from srcext import SRC
from srcext.ops import CHECKPOINT_INTERVAL, constant_args, src_recurrence_fused
from srcext.reference import SRCConstants, src_recurrence_reference

from helpers import FLAG_IDS, FLAGS, random_constants, requires_fused
from op_helpers import make_inputs
from lengths_helpers import CASE_IDS, CASES, check_against_alone, cotangents, pad_after, run

# The fused kernels of both backends (the CUDA ones where a GPU and srcext's CUDA kernels are).
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(
                not (torch.cuda.is_available() and srcext.fused_available("cuda")),
                reason="no CUDA device or srcext built without CUDA kernels",
            ),
        ],
    ),
]
K = CHECKPOINT_INTERVAL


@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reference_matches_each_sample_alone(case, detach, st):
    check_against_alone(
        src_recurrence_reference, case, random_constants(1), torch.float64, detach, st, out_tol=1e-12, grad_tol=1e-10
    )


@requires_fused
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("device", DEVICES)
def test_fused_matches_each_sample_alone(device, dtype, case, detach, st):
    outs, grads = check_against_alone(src_recurrence_fused, case, SRCConstants(), dtype, detach, st, device=device)
    if case is CASES[0] and dtype == torch.float64:
        # Not vacuous: neurons fire, and every gradient is there.
        assert (outs[0] > 0).any()
        assert all(g.abs().sum() > 0 for g in grads)


@requires_fused
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("device", DEVICES)
def test_fused_half_storage_matches_each_sample_alone(device, dtype, detach, st):
    # Short T, as in test_ops: 8-bit rounding can move a spike by a step in a long run.
    check_against_alone(
        src_recurrence_fused, (12, 5, 70, [12, 0, 3, 7, 11]), SRCConstants(), dtype, detach, st, device=device
    )


@requires_fused
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", [src_recurrence_fused, src_recurrence_reference], ids=["fused", "reference"])
def test_non_finite_padding_does_not_matter(fn, device):
    T, B, H, lengths = CASES[0]
    lengths = torch.tensor(lengths)
    k = SRCConstants()
    u, bias, state = make_inputs(T, B, H, k, torch.float64, seed=3)
    cot = cotangents(T, B, H, seed=4)
    clean = run(fn, pad_after(u, lengths, 0.0), bias, state, k, False, False, lengths, cot, torch.float64, device)
    for value in (float("nan"), float("inf")):
        dirty = run(fn, pad_after(u, lengths, value), bias, state, k, False, False, lengths, cot, torch.float64, device)
        for a, b in zip(clean[0] + clean[1], dirty[0] + dirty[1]):
            assert torch.equal(a, b)


@requires_fused
@pytest.mark.parametrize("ldtype", [torch.int64, torch.int32], ids=["int64", "int32"])
@pytest.mark.parametrize("device", DEVICES)
def test_full_lengths_equal_no_lengths_bitwise(device, ldtype):
    """lengths == T everywhere (int64 or int32) gives exactly what no lengths gives."""
    T, B, H = 2 * K + 3, 3, 70
    k = SRCConstants()
    u, bias, state = make_inputs(T, B, H, k, torch.float32, seed=6)
    cot = cotangents(T, B, H, seed=7)
    lengths = torch.full((B,), T, dtype=ldtype)
    a = run(src_recurrence_fused, u, bias, state, k, False, True, None, cot, torch.float32, device)
    b = run(src_recurrence_fused, u, bias, state, k, False, True, lengths.to(device), cot, torch.float32, device)
    for x, y in zip(a[0] + a[1], b[0] + b[1]):
        assert torch.equal(x, y)


@requires_fused
@pytest.mark.parametrize("device", DEVICES)
def test_checkpoints_past_a_length_hold_the_frozen_state(device):
    T, B, H = 3 * K + 2, 4, 3
    lengths = torch.tensor([0, K, K + 1, T])
    u, bias, state = (
        x.to(device) if isinstance(x, torch.Tensor) else tuple(s.to(device) for s in x)
        for x in make_inputs(T, B, H, SRCConstants(), torch.float64, seed=8)
    )
    spikes, i_n, h_n, hs_n, ck = (
        x.cpu()
        for x in torch.ops.srcext.src_forward(
            u, bias, *state, *constant_args(SRCConstants(), torch.float64), True, True, True, lengths.to(device)
        )
    )
    final = torch.stack([i_n, h_n, hs_n])  # (3, B, H)
    for c in range(ck.shape[0]):
        past = lengths <= c * K
        assert torch.equal(ck[c][:, past], final[:, past])
    assert past.sum() == 3  # the last checkpoint covers every finished sample


def op_args(T, B, H, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(T, B, H, generator=g, dtype=torch.float64)
    bias = torch.full((H,), -5.0, dtype=torch.float64)
    states = [torch.randn(B, H, generator=g, dtype=torch.float64) * 0.3 for _ in range(3)]
    return [t.requires_grad_(requires_grad) for t in [u, bias] + states]


@requires_fused
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("ldtype", [torch.int64, torch.int32], ids=["int64", "int32"])
def test_opcheck_with_lengths(ldtype, detach, st):
    T, B, H = K + 5, 3, 2
    lengths = torch.tensor([K + 5, 0, 7], dtype=ldtype)
    c = list(constant_args(SRCConstants(), torch.float64))
    torch.library.opcheck(torch.ops.srcext.src_forward.default, op_args(T, B, H) + c + [detach, st, True, lengths])
    u, bias, i0, h0, hs0 = op_args(T, B, H, requires_grad=False)
    out = torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, *c, detach, st, True, lengths)
    g = torch.Generator().manual_seed(1)
    grads = [torch.randn(T, B, H, generator=g, dtype=torch.float64)] + [
        torch.randn(B, H, generator=g, dtype=torch.float64) for _ in range(3)
    ]
    torch.library.opcheck(
        torch.ops.srcext.src_backward.default,
        grads + [u, bias, out[4]] + c + [detach, st, False, lengths],
        test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"),
    )


@requires_fused
def test_gradcheck_with_lengths_float64():
    k = SRCConstants(z=0.2)
    T, B, H = 2 * K + 3, 4, 2
    lengths = torch.tensor([T, 0, K, K + 3])
    u, b, s = make_inputs(T, B, H, k, torch.float64, seed=5)
    leaves = tuple(t.clone().requires_grad_() for t in (u, b) + s)

    # Exact BPTT and the true relu derivative: the only gradient a finite difference checks.
    def fn(u, b, i0, h0, hs0):
        spikes, final = src_recurrence_fused(u, b, (i0, h0, hs0), k, False, False, lengths=lengths)
        return (spikes,) + final

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


@requires_fused
def test_compile_fullgraph_with_lengths_matches_eager():
    torch._dynamo.reset()
    k = SRCConstants()
    T, B, H = K + 3, 4, 6
    u0, bias0, state = make_inputs(T, B, H, k, torch.float32, seed=11)
    lengths = torch.tensor([T, 2, 0, K])

    def f(u, bias, lengths):
        spikes, (i_n, h_n, hs_n) = src_recurrence_fused(u, bias, state_f, k, True, True, lengths=lengths)
        return spikes.sum(0) + h_n + i_n

    state_f = tuple(s.float() for s in state)
    results = []
    for fn in (f, torch.compile(f, fullgraph=True, backend="aot_eager")):
        u, bias = u0.float().requires_grad_(), bias0.float().requires_grad_()
        out = fn(u, bias, lengths)
        results.append((out.detach(),) + torch.autograd.grad(out.square().sum(), (u, bias)))
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-5)
    assert results[0][1].abs().sum() > 0


BAD_LENGTHS = [
    (torch.tensor([1.0, 2.0, 3.0]), TypeError, "int32 or int64"),
    (torch.tensor([1, 2]), ValueError, r"shape \(B,\) = \(3,\)"),
    (torch.tensor([[1, 2, 3]]), ValueError, r"shape \(B,\) = \(3,\)"),
    (torch.tensor([1, -1, 3]), ValueError, r"\[0, T\] = \[0, 5\]"),
    (torch.tensor([1, 6, 3]), ValueError, r"\[0, T\] = \[0, 5\]"),
]


@pytest.mark.parametrize("lengths,exc,match", BAD_LENGTHS, ids=["float", "short", "2d", "negative", "too_long"])
@pytest.mark.parametrize("fn", [src_recurrence_fused, src_recurrence_reference], ids=["fused", "reference"])
def test_bad_lengths_raise_clear_errors(fn, lengths, exc, match):
    if fn is src_recurrence_fused and not srcext.fused_available("cpu"):
        pytest.skip("srcext._C not built")
    u, bias, state = make_inputs(5, 3, 4, SRCConstants(), torch.float64, seed=0)
    with pytest.raises(exc, match=match):
        fn(u, bias, state, SRCConstants(), lengths=lengths)


@requires_fused
@pytest.mark.parametrize("lengths,exc,match", BAD_LENGTHS, ids=["float", "short", "2d", "negative", "too_long"])
def test_bad_lengths_raise_clear_errors_from_the_ops(lengths, exc, match):
    """The ops check for themselves, for callers that do not go through the Python wrapper."""
    u, bias, i0, h0, hs0 = op_args(5, 3, 4, requires_grad=False)
    c = constant_args(SRCConstants(), torch.float64)
    with pytest.raises(exc, match=match):
        torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, *c, True, True, True, lengths)
    out = torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, *c, True, True, True)
    grads = [torch.zeros_like(u)] + [torch.zeros_like(i0)] * 3
    with pytest.raises(exc, match=match):
        torch.ops.srcext.src_backward(*grads, u, bias, out[4], *c, True, True, False, lengths)


def test_bad_lengths_type_is_refused():
    u, bias, state = make_inputs(5, 3, 4, SRCConstants(), torch.float64, seed=0)
    with pytest.raises(TypeError, match="tensor or None"):
        src_recurrence_reference(u, bias, state, SRCConstants(), lengths=[1, 2, 3])


@pytest.mark.parametrize("backend", ["reference", pytest.param("fused", marks=requires_fused)])
def test_nan_and_inf_padding_reach_no_gradient(backend):
    """The padding past lengths is never read, not even by the weight gradient of the input
    GEMM (grad_u^T x, where 0 * NaN would be NaN): gradients equal running each sample alone."""
    torch.manual_seed(0)
    m = SRC(8, 6, 2, backend=backend, init_rate=None, weight_scale=4.0)
    x = torch.randn(12, 3, 8)
    lengths = torch.tensor([12, 7, 0])
    padded = x.clone()
    padded[7:, 1] = float("nan")
    padded[:, 2] = float("inf")
    padded.requires_grad_()
    out, _ = m(padded, lengths=lengths)
    out.sum().backward()
    grads = [p.grad.clone() for p in m.parameters()]
    assert all(torch.isfinite(g).all() for g in grads) and torch.isfinite(padded.grad).all()
    m.zero_grad()
    alone = sum(m(x[: int(n), b : b + 1])[0].sum() for b, n in enumerate(lengths) if n > 0)
    alone.backward()
    for g, p in zip(grads, m.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-5)
