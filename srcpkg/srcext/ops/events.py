"""The fake (meta) implementations and autograd of the event ops (schemas in
csrc/events/src_events_schemas.h; the event list they read: :mod:`srcext.events`), and the
autograd Function of the eager event projection, which keeps the events of its forward for its
weight gradient.
"""

from __future__ import annotations

import torch

from .._extension import extension_loaded


class EventProjection(torch.autograd.Function):
    """u = s W^T from the events of s; grad_s = grad_u W (dense), grad_W from the events, kept
    from the forward, or, where they take more memory than s (dense enough), rebuilt from s."""

    @staticmethod
    def forward(ctx, s, weight, row_ptr, col, val):
        ctx.num_inputs = s.shape[1]
        keep_events = col.numel() * (col.element_size() + val.element_size()) <= s.numel() * s.element_size()
        need_w = ctx.needs_input_grad[1]
        saved = (row_ptr, col, val) if keep_events and need_w else (None, None, None)
        ctx.save_for_backward(
            *saved, s if need_w and not keep_events else None, weight if ctx.needs_input_grad[0] else None
        )
        return torch.ops.srcext.src_event_matmul(row_ptr, col, val, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_u):
        row_ptr, col, val, s, weight = ctx.saved_tensors
        grad_s = grad_u.mm(weight) if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_u = grad_u.contiguous()
            if row_ptr is not None:  # the events were kept
                grad_w = torch.ops.srcext.src_event_weight_grad(row_ptr, col, val, grad_u, ctx.num_inputs)
            else:
                grad_w = torch.ops.srcext.src_projection_weight_grad(grad_u, s, 1.0)
        return grad_s, grad_w, None, None, None


def register_event_formulas(namespace: str = "srcext") -> None:
    """Register the fakes and autograd of the event ops ``{namespace}::src_events`` etc.
    Done for ``srcext`` at import; the tests call it once more for the CUDA host emulation."""
    ops = getattr(torch.ops, namespace)

    @torch.library.register_fake(f"{namespace}::src_events")
    def _events_fake(s):
        nnz = torch.library.get_ctx().new_dynamic_size()
        R = s.shape[0]
        return (s.new_empty((R + 1,), dtype=torch.int64), s.new_empty((nnz,), dtype=torch.int64), s.new_empty((nnz,)))

    @torch.library.register_fake(f"{namespace}::src_event_matmul")
    def _matmul_fake(row_ptr, col, val, weight):
        return val.new_empty((row_ptr.shape[0] - 1, weight.shape[0]))

    @torch.library.register_fake(f"{namespace}::src_event_weight_grad")
    def _weight_grad_fake(row_ptr, col, val, grad_u, num_inputs):
        return grad_u.new_empty((grad_u.shape[1], num_inputs))

    @torch.library.register_fake(f"{namespace}::src_projection")
    def _projection_fake(s, weight, max_density):
        return s.new_empty((s.shape[0], weight.shape[0])), s.new_empty((), dtype=torch.int64)

    @torch.library.register_fake(f"{namespace}::src_projection_weight_grad")
    def _projection_weight_grad_fake(grad_u, s, max_density):
        return grad_u.new_empty((grad_u.shape[1], s.shape[1]))

    # src_projection: u = s W^T. grad_s = grad_u W (dense: the input gradient has no sparsity
    # to exploit), grad_W = grad_u^T s by the events of s.
    def _projection_setup(ctx, inputs, output):
        s, weight, max_density = inputs
        ctx.max_density = max_density
        ctx.save_for_backward(s if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        ctx.mark_non_differentiable(output[1])

    def _projection_backward(ctx, grad_u, _grad_count):
        s, weight = ctx.saved_tensors
        grad_s = grad_u.mm(weight) if ctx.needs_input_grad[0] else None
        grad_w = ops.src_projection_weight_grad(grad_u, s, ctx.max_density) if ctx.needs_input_grad[1] else None
        return grad_s, grad_w, None

    torch.library.register_autograd(
        f"{namespace}::src_projection", _projection_backward, setup_context=_projection_setup
    )

    # src_event_matmul: u[r] = sum over the events (r, f, v) of v W[:, f].
    def _matmul_setup(ctx, inputs, output):
        row_ptr, col, val, weight = inputs
        ctx.num_inputs = weight.shape[1]
        ctx.save_for_backward(row_ptr, col, val, weight)

    def _matmul_backward(ctx, grad_u):
        row_ptr, col, val, weight = ctx.saved_tensors
        grad_val = grad_w = None
        if ctx.needs_input_grad[2]:
            # d u[r, h] / d v = W[h, f]: one dot product per event.
            counts = row_ptr.diff()
            rows = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
            grad_val = (grad_u.index_select(0, rows) * weight.t().index_select(0, col)).sum(1)
        if ctx.needs_input_grad[3]:
            grad_w = ops.src_event_weight_grad(row_ptr, col, val, grad_u, ctx.num_inputs)
        return None, None, grad_val, grad_w

    torch.library.register_autograd(f"{namespace}::src_event_matmul", _matmul_backward, setup_context=_matmul_setup)

    def _no_double_backward(ctx, *grads):
        raise RuntimeError(
            "srcext: double backward through the event-driven projection is not supported; use input_projection='dense'"
        )

    for name in ("src_event_weight_grad", "src_projection_weight_grad"):
        torch.library.register_autograd(f"{namespace}::{name}", _no_double_backward)


if extension_loaded():
    register_event_formulas("srcext")
