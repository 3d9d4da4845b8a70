"""The fused ops against the pure-PyTorch reference, at the level of the time loop."""
import pytest
import torch

from srcext.ops import CHECKPOINT_INTERVAL, constant_args, src_recurrence_fused
from srcext.reference import SRCConstants, src_recurrence_reference

from conftest import (FLAG_IDS, FLAGS, assert_close, constants_cases, rel_err, requires_fused,
                      tolerance)

pytestmark = requires_fused

SHAPES = [(1, 1, 1), (7, 3, 5), (33, 2, 67), (CHECKPOINT_INTERVAL, 4, 3),
          (2 * CHECKPOINT_INTERVAL + 1, 1, 130)]


def make_inputs(T, B, H, k, dtype, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    # Drive strong enough that neurons spike: the interesting regime for every gradient path.
    u = (torch.randn(T, B, H, generator=g, dtype=torch.float64) * 0.8 + 0.25) * scale
    bias = torch.full((H,), k.bias_max, dtype=torch.float64) - torch.rand(H, generator=g) * 1.5
    state = tuple(torch.randn(B, H, generator=g, dtype=torch.float64) * 0.5 for _ in range(3))
    # Both sides start from the values the storage dtype can hold.
    u, bias = (t.to(dtype).double() for t in (u, bias))
    state = tuple(t.to(dtype).double() for t in state)
    return u, bias, state


def run_both(T, B, H, k, dtype, detach, st, seed=0, with_reference_in_dtype=False,
             device="cpu", fused=src_recurrence_fused):
    """Fused (the function `fused`) in `dtype` on `device` and reference in float64 on the CPU,
    on the same inputs and upstream gradients (and, on request, the reference in `dtype` too:
    the accuracy that dtype allows). Results come back on the CPU."""
    u64, b64, s64 = make_inputs(T, B, H, k, dtype, seed)
    results = []
    runs = [(fused, dtype, device), (src_recurrence_reference, torch.float64, "cpu")]
    if with_reference_in_dtype:
        runs.append((src_recurrence_reference, dtype, device))
    for fn, dt, dev in runs:
        leaves = [t.to(device=dev, dtype=dt).requires_grad_() for t in (u64, b64) + s64]
        u, b, i0, h0, hs0 = leaves
        spikes, final = fn(u, b, (i0, h0, hs0), k, detach, st)
        outs = (spikes,) + tuple(final)
        g = torch.Generator().manual_seed(seed + 1)
        cot = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(device=dev, dtype=dt)
               for o in outs]
        loss = sum((o * c).sum() for o, c in zip(outs, cot))
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        results.append((tuple(o.detach().cpu() for o in outs),
                        tuple(None if g is None else g.cpu() for g in grads)))
    return results


@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("name,k", constants_cases(), ids=[c[0] for c in constants_cases()])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_fused_matches_reference(dtype, shape, name, k, detach, st):
    assert_matches_reference(dtype, shape, k, detach, st, device="cpu")


def assert_matches_reference(dtype, shape, k, detach, st, device, fused=src_recurrence_fused):
    """Fused in `dtype` on `device` against the float64 reference, held to a fixed bound or
    to 4x the error of the reference itself run in `dtype`, whichever is larger (a saturated
    neuron's 1 - tanh^2 has few significant bits in float32, in any implementation)."""
    (outs, grads), (ref_outs, ref_grads), (own_outs, own_grads) = run_both(
        *shape, k, dtype, detach, st, with_reference_in_dtype=True, device=device, fused=fused)

    def bound(base, own, ref):
        return base if ref is None or own is None else max(base, 4 * rel_err(own, ref))

    for label, a, b, own in zip(("spikes", "i_n", "h_n", "hs_n"), outs, ref_outs, own_outs):
        assert a.dtype == dtype
        assert_close(a, b, bound(tolerance(dtype, True), own, b), label)
    for label, a, b, own in zip(("u", "bias", "i0", "h0", "hs0"), grads, ref_grads, own_grads):
        assert_close(a, b, bound(tolerance(dtype, detach), own, b), f"grad {label}")


def test_cases_exercise_spikes_and_every_gradient_path():
    """Guard against a vacuous comparison: the inputs above make neurons fire, and every
    gradient the reference defines is non-zero."""
    (outs, grads), _ = run_both(33, 2, 67, SRCConstants(), torch.float64, False, True)
    assert 0.01 < (outs[0] > 0).double().mean() < 0.5
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
def test_half_storage_matches_reference(dtype, detach, st):
    # Rounding the drive to 8 bits can move a spike by a step in a long run; keep T short.
    (outs, grads), (ref_outs, ref_grads) = run_both(12, 3, 40, SRCConstants(), dtype, detach, st)
    for label, a, b in zip(("spikes", "i_n", "h_n", "hs_n"), outs, ref_outs):
        assert a.dtype == dtype
        assert_close(a, b, tolerance(dtype, True), label)
    for label, a, b in zip(("u", "bias", "i0"), grads, ref_grads):
        assert_close(a, b, tolerance(dtype, detach), f"grad {label}")


def test_gradcheck_exact_bptt_float64():
    k = SRCConstants(z=0.2)
    u, b, s = make_inputs(2 * CHECKPOINT_INTERVAL + 3, 2, 3, k, torch.float64, seed=5)
    leaves = tuple(t.clone().requires_grad_() for t in (u, b) + s)

    def fn(u, b, i0, h0, hs0):
        spikes, final = src_recurrence_fused(u, b, (i0, h0, hs0), k, False, False)
        return (spikes,) + final

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_double_backward_raises_clear_error():
    k = SRCConstants()
    u, b, s = make_inputs(5, 2, 3, k, torch.float64, seed=2)
    u.requires_grad_()
    b.requires_grad_()
    spikes, _ = src_recurrence_fused(u, b, s, k, False, False)
    (gu,) = torch.autograd.grad(spikes.sum(), u, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        gu.sum().backward()


def test_backward_without_saved_checkpoints_raises():
    k = SRCConstants()
    u, b, s = make_inputs(5, 2, 3, k, torch.float32, seed=2)
    u = u.float().requires_grad_()
    out = torch.ops.srcext.src_forward(u, b.float(), *(x.float() for x in s),
                                       *constant_args(k), True, True, False)
    with pytest.raises(RuntimeError, match="save_for_backward"):
        out[0].sum().backward()


def test_bias_gradient_is_deterministic():
    k = SRCConstants()
    grads = []
    for _ in range(2):
        (outs, g), _ = run_both(40, 8, 70, k, torch.float32, True, True, seed=9)
        grads.append(g)
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def upstream_layouts(T, B, H, dtype):
    """Upstream gradients of the same values in the layouts autograd hands over: contiguous,
    broadcast from a scalar (.sum()), broadcast over T (.mean(0)), transposed (batch_first),
    strided (a slice)."""
    g = torch.Generator().manual_seed(3)
    full = torch.randn(T, B, H, generator=g, dtype=dtype)
    row = torch.randn(1, B, H, generator=g, dtype=dtype)
    big = torch.zeros(T, B, 2 * H, dtype=dtype)
    big[..., ::2] = full
    return {
        "scalar": (torch.tensor(0.7, dtype=dtype).expand(T, B, H), torch.full((T, B, H), 0.7, dtype=dtype)),
        "over_T": (row.expand(T, B, H), row.expand(T, B, H).contiguous()),
        "transposed": (full.transpose(0, 1).contiguous().transpose(0, 1), full),
        "strided": (big[..., ::2], full),
    }


@pytest.mark.parametrize("layout", ["scalar", "over_T", "transposed", "strided"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=["f64", "f32", "bf16"])
def test_backward_reads_any_upstream_layout_without_copying(dtype, layout):
    """The backward gives bitwise the same gradients for any layout of the upstream gradient,
    and reads it in place: no clone or copy of it is made (a broadcast gradient from .sum()
    used to be copied to a full (T, B, H) tensor)."""
    T, B, H = 2 * CHECKPOINT_INTERVAL + 3, 3, 70
    k = SRCConstants()
    u, b, s = (t.to(dtype) if isinstance(t, torch.Tensor) else tuple(x.to(dtype) for x in t)
               for t in make_inputs(T, B, H, k, dtype, seed=4))
    c = constant_args(k, dtype)
    out = torch.ops.srcext.src_forward(u, b, *s, *c, True, True, True)
    strided, contiguous = upstream_layouts(T, B, H, dtype)[layout]
    state_grads = [torch.zeros(B, H, dtype=dtype) for _ in range(3)]
    expected = torch.ops.srcext.src_backward(contiguous, *state_grads, u, b, out[4], *c, False, True,
                                             False)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                record_shapes=True) as prof:
        got = torch.ops.srcext.src_backward(strided, *state_grads, u, b, out[4], *c, False, True,
                                            False)
    copies = [(e.key, e.input_shapes) for e in prof.key_averages(group_by_input_shape=True)
              if e.key in ("aten::clone", "aten::copy_", "aten::contiguous")
              and [T, B, H] in e.input_shapes]
    assert copies == []
    for a, e in zip(got, expected):
        assert torch.equal(a, e)
