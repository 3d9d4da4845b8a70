"""Random op inputs run through a fused op and the float64 reference on the same inputs and
upstream gradients, and the comparison every backend is held to (test_ops on every device,
test_cuda_emulation)."""

import pytest
import torch

from srcext.ops import CHECKPOINT_INTERVAL, src_recurrence_fused
from srcext.reference import SRCConstants, src_recurrence_reference

from helpers import FLAG_IDS, FLAGS, assert_close, constants_cases, cosine, rel_err, tolerance

SHAPES = [(1, 1, 1), (7, 3, 5), (33, 2, 67), (CHECKPOINT_INTERVAL, 4, 3), (2 * CHECKPOINT_INTERVAL + 1, 1, 130)]


def over_oracle_cases(test):
    """Parametrise test(dtype, shape, name, k, detach, st) over float64 / float32, SHAPES, the
    default and random constants, and every gradient flag: the grid each backend's fused op is
    held to against the reference (assert_matches_reference)."""
    cases = constants_cases()
    for mark in (
        pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"]),
        pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES]),
        pytest.mark.parametrize("name,k", cases, ids=[c[0] for c in cases]),
        pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS),
    ):
        test = mark(test)
    return test


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


def run_both(
    T, B, H, k, dtype, detach, st, seed=0, with_reference_in_dtype=False, device="cpu", fused=src_recurrence_fused
):
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
        cot = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(device=dev, dtype=dt) for o in outs]
        loss = sum((o * c).sum() for o, c in zip(outs, cot))
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        results.append((tuple(o.detach().cpu() for o in outs), tuple(None if g is None else g.cpu() for g in grads)))
    return results


def assert_matches_reference(dtype, shape, k, detach, st, device, fused=src_recurrence_fused):
    """Fused in `dtype` on `device` against the float64 reference, held to a fixed bound or
    to 4x the error of the reference itself run in `dtype`, whichever is larger (a saturated
    neuron's 1 - tanh^2 has few significant bits in float32, in any implementation)."""
    (outs, grads), (ref_outs, ref_grads), (own_outs, own_grads) = run_both(
        *shape, k, dtype, detach, st, with_reference_in_dtype=True, device=device, fused=fused
    )

    def bound(base, own, ref):
        return base if ref is None or own is None else max(base, 4 * rel_err(own, ref))

    for label, a, b, own in zip(("spikes", "i_n", "h_n", "hs_n"), outs, ref_outs, own_outs):
        assert a.dtype == dtype
        assert_close(a, b, bound(tolerance(dtype, True), own, b), label)
    for label, a, b, own in zip(("u", "bias", "i0", "h0", "hs0"), grads, ref_grads, own_grads):
        assert_close(a, b, bound(tolerance(dtype, detach), own, b), f"grad {label}")


def assert_half_storage_matches_reference(dtype, detach, st, device="cpu", fused=src_recurrence_fused):
    """Fused in half storage (bfloat16 / float16) on `device` against the float64 reference, on
    a short run (rounding the drive to 8 bits can move a spike by a step in a long one): the
    results in `dtype` and close, the gradients close in direction and size too, not only in
    relative error."""
    (outs, grads), (ref_outs, ref_grads) = run_both(
        12, 3, 40, SRCConstants(), dtype, detach, st, device=device, fused=fused
    )
    for label, a, b in zip(("spikes", "i_n", "h_n", "hs_n"), outs, ref_outs):
        assert a.dtype == dtype
        assert_close(a, b, tolerance(dtype, True), label)
    for label, a, b in zip(("u", "bias", "i0"), grads, ref_grads):
        assert_close(a, b, tolerance(dtype, detach), f"grad {label}")
        assert cosine(a, b) > 0.999, label
        assert 0.97 < (a.double().norm() / b.double().norm()).item() < 1.03, label


def op_args(T, B, H, dtype, device):
    """Leaf tensors [u, bias, i0, h0, hs0] for calling the ops directly on `device`."""
    g = torch.Generator().manual_seed(0)
    u = torch.randn(T, B, H, generator=g, dtype=dtype).to(device).requires_grad_()
    bias = torch.full((H,), -5.0, dtype=dtype, device=device, requires_grad=True)
    states = [(torch.randn(B, H, generator=g, dtype=dtype) * 0.3).to(device).requires_grad_() for _ in range(3)]
    return [u, bias] + states


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
