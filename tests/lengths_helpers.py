"""Variable lengths: the cases and the oracle (each sample run alone, with the reference, on
its own prefix u[:lengths[b], b]) shared by test_lengths and test_cuda_emulation."""

import torch

from srcext.ops import CHECKPOINT_INTERVAL
from srcext.reference import src_recurrence_reference

from helpers import assert_close, rel_err, tolerance
from op_helpers import make_inputs

K = CHECKPOINT_INTERVAL
# (T, B, H, lengths): blocks of 64 lanes spanning rows of different lengths, lengths on and
# next to checkpoint boundaries, T and H not multiples of 16 / 64, all full, all empty, one
# long and many short with H = 1, and the empty shapes.
CASES = [
    (2 * K + 5, 6, 70, [0, 2 * K + 5, 1, K, K + 1, 2 * K]),
    (K + 4, 3, 64, [K + 4] * 3),
    (K + 4, 4, 5, [0] * 4),
    (3 * K, 9, 1, [3 * K, 1, 2, 3, 1, 2, 0, 5, 1]),
    (0, 3, 5, [0, 0, 0]),
    (5, 0, 4, []),
    (5, 3, 0, [1, 2, 5]),
]
CASE_IDS = [f"T{c[0]}-B{c[1]}-H{c[2]}" for c in CASES]


def pad_after(u, lengths, value):
    """u with the drive past each sample's length set to `value` (which must not matter)."""
    steps = torch.arange(u.shape[0]).unsqueeze(1)  # (T, 1)
    return torch.where((steps >= lengths).unsqueeze(-1), torch.full_like(u, value), u)


def cotangents(T, B, H, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for shape in ((T, B, H), (B, H), (B, H), (B, H))]


def run(fn, u, bias, state, k, detach, st, lengths, cot, dtype, device="cpu"):
    """fn in `dtype` on `device`: its outputs (in `dtype`) and the gradients of
    sum(output * cotangent) w.r.t. (u, bias, i0, h0, hs0) in float64 (zeros where fn defines
    none), all back on the CPU. lengths stays on the CPU, as PackedSequence keeps them."""
    leaves = [t.to(device=device, dtype=dtype).requires_grad_() for t in (u, bias) + tuple(state)]
    spikes, final = fn(leaves[0], leaves[1], tuple(leaves[2:]), k, detach, st, lengths=lengths)
    outs = (spikes,) + tuple(final)
    loss = sum((o.double() * c.to(device)).sum() for o, c in zip(outs, cot))
    grads = torch.autograd.grad(loss, leaves, allow_unused=True) if loss.requires_grad else [None] * len(leaves)
    grads = [torch.zeros_like(x, dtype=torch.float64) if g is None else g.double() for g, x in zip(grads, leaves)]
    return [o.detach().cpu() for o in outs], [g.cpu() for g in grads]


def each_sample_alone(u, bias, state, k, detach, st, lengths, cot, dtype=torch.float64):
    """The promised result: the reference run on each sample's own prefix alone (in float64,
    or in `dtype`, for the accuracy that dtype allows), results in float64."""
    T, B, H = u.shape
    spikes = torch.zeros(T, B, H, dtype=torch.float64)
    finals = [torch.zeros(B, H, dtype=torch.float64) for _ in range(3)]
    grad_u = torch.zeros(T, B, H, dtype=torch.float64)
    grad_bias = torch.zeros(H, dtype=torch.float64)
    grad_state = [torch.zeros(B, H, dtype=torch.float64) for _ in range(3)]
    for b in range(B):
        L = int(lengths[b])
        row = slice(b, b + 1)
        (s, *fin), (gu, gb, *gs) = run(
            src_recurrence_reference,
            u[:L, row],
            bias,
            tuple(x[row] for x in state),
            k,
            detach,
            st,
            None,
            [cot[0][:L, row]] + [c[row] for c in cot[1:]],
            dtype,
        )
        spikes[:L, row] = s
        grad_u[:L, row] = gu
        grad_bias += gb
        for dst, src in zip(finals, fin):
            dst[row] = src
        for dst, src in zip(grad_state, gs):
            dst[row] = src
    return [spikes] + finals, [grad_u, grad_bias] + grad_state


OUT_NAMES = ("spikes", "i_n", "h_n", "hs_n")
GRAD_NAMES = ("u", "bias", "i0", "h0", "hs0")


def check_against_alone(fn, case, k, dtype, detach, st, seed=0, out_tol=None, grad_tol=None, device="cpu"):
    T, B, H, lengths = case
    lengths = torch.tensor(lengths, dtype=torch.int64)
    u, bias, state = make_inputs(T, B, H, k, dtype, seed)
    # Large padding: it would change every result were it read.
    u = pad_after(u, lengths, 5.0)
    cot = cotangents(T, B, H, seed + 1)
    outs, grads = run(fn, u, bias, state, k, detach, st, lengths, cot, dtype, device)
    want_outs, want_grads = each_sample_alone(u, bias, state, k, detach, st, lengths, cot)
    # As in test_ops: a fixed bound, or 4x the error of the reference itself run in `dtype`
    # where that is larger (exact BPTT through the bistable cell amplifies rounding).
    own_outs, own_grads = (
        ([None] * 4, [None] * 5)
        if dtype == torch.float64
        else each_sample_alone(u, bias, state, k, detach, st, lengths, cot, dtype)
    )

    def bound(base, own, want):
        return base if own is None else max(base, 4 * rel_err(own, want))

    out_tol = tolerance(dtype, True) if out_tol is None else out_tol
    grad_tol = tolerance(dtype, detach) if grad_tol is None else grad_tol
    for name, a, b, own in zip(OUT_NAMES, outs, want_outs, own_outs):
        assert a.dtype == dtype
        assert_close(a, b, bound(out_tol, own, b), name)
    for name, a, b, own in zip(GRAD_NAMES, grads, want_grads, own_grads):
        assert_close(a, b, bound(grad_tol, own, b), f"grad {name}")
    # Exactly zero past each sample's length, not merely small.
    steps = torch.arange(T).unsqueeze(1)
    past = (steps >= lengths).unsqueeze(-1).expand(T, B, H)
    assert torch.count_nonzero(outs[0][past]) == 0
    assert torch.count_nonzero(grads[0][past]) == 0
    return outs, grads
