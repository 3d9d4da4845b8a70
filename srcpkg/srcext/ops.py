"""The fused srcext ops: fake (meta) implementations and autograd, registered from Python.

The op schemas and kernels live in C++ (csrc/src_library.cpp, csrc/cpu, csrc/cuda). Here:

* ``register_fake`` gives both ops shapes without data, for torch.compile and export;
* ``register_autograd`` makes ``src_backward`` (itself a registered op) the derivative of
  ``src_forward``; the backward op has no derivative and says so.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from ._extension import extension_loaded
from .reference import SRCConstants, State, check_lengths

# Must equal kCheckpointInterval in csrc/src_params.h (opcheck tests compare the two).
CHECKPOINT_INTERVAL = 16
_CONSTANT_NAMES = ("alpha", "rho", "r", "r_s", "z", "z_hyp", "z_dep", "gate_slope",
                   "gate_threshold")


def num_checkpoints(T: int) -> int:
    """How many states the forward saves for the backward: one before every
    CHECKPOINT_INTERVAL-th step (num_checkpoints in csrc/src_params.h)."""
    return (T + CHECKPOINT_INTERVAL - 1) // CHECKPOINT_INTERVAL


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision of the kernels' math and of the saved trace for a storage dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def constant_args(k: SRCConstants) -> tuple:
    return tuple(float(getattr(k, name)) for name in _CONSTANT_NAMES)


def src_recurrence_fused(
    u: torch.Tensor,
    bias: torch.Tensor,
    state: State,
    k: SRCConstants,
    detach_recurrent: bool = True,
    straight_through: bool = True,
    lengths: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, State]:
    """The fused equivalent of :func:`srcext.reference.src_recurrence_reference`, lengths
    included (int32 or int64 (B,), on any device: it is moved to u's)."""
    return run_forward_op(torch.ops.srcext.src_forward, u, bias, state, k, detach_recurrent,
                          straight_through, lengths)


def run_forward_op(forward_op, u, bias, state, k, detach_recurrent, straight_through,
                   lengths=None):
    """Call a ``src_forward`` op (srcext's, or the CUDA emulation's in the tests), keeping the
    checkpoints only when a gradient will be asked for."""
    if lengths is not None:
        check_lengths(lengths, u)
        lengths = lengths.to(u.device)
    i0, h0, hs0 = state
    save = torch.is_grad_enabled() and (
        u.requires_grad or bias.requires_grad or i0.requires_grad or h0.requires_grad
        or hs0.requires_grad
    )
    spikes, i_n, h_n, hs_n, _ = forward_op(
        u, bias, i0, h0, hs0, *constant_args(k), detach_recurrent, straight_through, save,
        lengths)
    return spikes, (i_n, h_n, hs_n)


def register_op_formulas(namespace: str = "srcext") -> None:
    """Register the fake (meta) implementations and the autograd formula of the ops
    ``{namespace}::src_forward`` and ``{namespace}::src_backward``.

    Done for ``srcext`` at import. The tests call it once more for the host emulation of the
    CUDA kernels, which defines the same ops in a namespace of its own.
    """
    ops = getattr(torch.ops, namespace)

    @torch.library.register_fake(f"{namespace}::src_forward")
    def _src_forward_fake(u, bias, i0, h0, hs0, alpha, rho, r, r_s, z, z_hyp, z_dep,
                          gate_slope, gate_threshold, detach_recurrent, straight_through,
                          save_for_backward, lengths=None):
        T, B, H = u.shape
        acc = acc_dtype(u.dtype)
        if save_for_backward:
            checkpoints = u.new_empty(
                (num_checkpoints(T), 3, B, H), dtype=acc)
        else:
            checkpoints = u.new_empty((0,), dtype=acc)
        return (u.new_empty((T, B, H)), u.new_empty((B, H)), u.new_empty((B, H)),
                u.new_empty((B, H)), checkpoints)

    @torch.library.register_fake(f"{namespace}::src_backward")
    def _src_backward_fake(grad_spikes, grad_i_n, grad_h_n, grad_hs_n, u, bias, checkpoints,
                           alpha, rho, r, r_s, z, z_hyp, z_dep, gate_slope, gate_threshold,
                           detach_recurrent, straight_through, lengths=None):
        T, B, H = grad_spikes.shape
        g = grad_spikes
        return (g.new_empty((T, B, H)), torch.empty_like(bias), g.new_empty((B, H)),
                g.new_empty((B, H)), g.new_empty((B, H)))

    def _setup_context(ctx, inputs, output):
        (u, bias, _i0, _h0, _hs0, *constants, detach_recurrent, straight_through,
         save_for_backward, lengths) = inputs
        assert len(constants) == len(_CONSTANT_NAMES), "src_forward's schema changed"
        ctx.constants = tuple(constants)
        ctx.detach_recurrent, ctx.straight_through = detach_recurrent, straight_through
        ctx.saved = save_for_backward
        ctx.shape = u.shape
        checkpoints = output[4]
        # u is kept anyway (it is the GEMM's output); the backward recomputes from it.
        ctx.save_for_backward(u, bias, checkpoints, lengths)
        ctx.mark_non_differentiable(checkpoints)
        ctx.set_materialize_grads(False)  # no (T, B, H) zero-fill for unused outputs

    def _src_forward_backward(ctx, grad_spikes, grad_i_n, grad_h_n, grad_hs_n, _gc):
        u, bias, checkpoints, lengths = ctx.saved_tensors
        if not ctx.saved and ctx.shape[0] > 0:
            raise RuntimeError(
                "srcext: src_forward ran with save_for_backward=False, so it kept nothing to "
                "differentiate; call it with save_for_backward=True when gradients are needed")
        T, B, H = ctx.shape

        def zeros_if_none(g, shape):
            return g if g is not None else u.new_zeros(shape)

        grads = ops.src_backward(
            zeros_if_none(grad_spikes, (T, B, H)),
            zeros_if_none(grad_i_n, (B, H)),
            zeros_if_none(grad_h_n, (B, H)),
            zeros_if_none(grad_hs_n, (B, H)),
            u, bias, checkpoints, *ctx.constants, ctx.detach_recurrent,
            ctx.straight_through, lengths)
        grad_u, grad_bias, grad_i0, grad_h0, grad_hs0 = grads
        # No gradient for the constants, the three flags and lengths.
        return (grad_u, grad_bias, grad_i0, grad_h0, grad_hs0) + (None,) * (
            len(_CONSTANT_NAMES) + 4)

    torch.library.register_autograd(
        f"{namespace}::src_forward", _src_forward_backward, setup_context=_setup_context)

    def _no_double_backward(ctx, *grads):
        raise RuntimeError(
            "srcext: double backward (a gradient of the SRC gradient) is not supported; "
            "use backend='reference' for higher-order derivatives")

    torch.library.register_autograd(f"{namespace}::src_backward", _no_double_backward)


if extension_loaded():
    register_op_formulas("srcext")
