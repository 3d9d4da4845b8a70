"""The bias the cell uses, min(b, bias_max), and its gradient.

The spec clamps the trainable bias b at bias_max. Through ``torch.clamp`` a bias above
bias_max gets zero gradient, so once there (a zero-init loop, weight decay toward 0, a large
step) it is frozen for good, silently. The straight-through form keeps the forward value
exactly min(b, bias_max) and, above bias_max, passes on the gradient of min(b, bias_max)
where it lowers b (a positive gradient: descent moves b down, back toward the range where it
acts). The other sign is dropped there: it would only push b further up, where it does
nothing, and it would take as long to come back.
"""

from __future__ import annotations

import torch

from .reference import effective_bias


def _straight_through_grad(b: torch.Tensor, bias_max: float, grad: torch.Tensor) -> torch.Tensor:
    passes = (b <= bias_max) | (grad > 0)
    return torch.where(passes, grad, torch.zeros_like(grad))


class _BiasStraightThrough(torch.autograd.Function):
    """For torch.func (grad, vmap, jvp), which needs forward and setup_context apart."""

    generate_vmap_rule = True  # elementwise: torch.func.vmap batches it as it is

    @staticmethod
    def forward(b: torch.Tensor, bias_max: float) -> torch.Tensor:
        return effective_bias(b, bias_max)

    @staticmethod
    def setup_context(ctx, inputs, output):
        b, bias_max = inputs
        ctx.save_for_backward(b)
        ctx.bias_max = bias_max

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (b,) = ctx.saved_tensors
        return _straight_through_grad(b, ctx.bias_max, grad), None


class _BiasStraightThroughEager(torch.autograd.Function):
    """The same, outside torch.func: torch binds a setup_context Function's arguments through
    inspect.signature on every call (~40 us here, more than the rest of a streaming step)."""

    @staticmethod
    def forward(ctx, b: torch.Tensor, bias_max: float) -> torch.Tensor:
        ctx.save_for_backward(b)
        ctx.bias_max = bias_max
        return effective_bias(b, bias_max)

    backward = _BiasStraightThrough.backward


def cell_bias(b: torch.Tensor, bias_max: float, straight_through: bool = True) -> torch.Tensor:
    """min(b, bias_max); ``straight_through=False`` gives the spec's clamp (zero gradient
    above bias_max), True the never-frozen gradient described above."""
    if straight_through and b.requires_grad and torch.is_grad_enabled():
        if torch.compiler.is_compiling() or torch._C._functorch.get_interpreter_stack():
            return _BiasStraightThrough.apply(b, bias_max)
        return _BiasStraightThroughEager.apply(b, bias_max)
    return effective_bias(b, bias_max)
