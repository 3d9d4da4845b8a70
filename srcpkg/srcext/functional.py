"""One SRC layer as a function: which backend runs it (:func:`use_fused`), and
:func:`src_layer`, the projection of every step and the time loop, fused or reference.
The modules (:class:`srcext.SRC`, :class:`srcext.SRCCell`) call it per layer and direction.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ._extension import fused_available, fused_unavailable_reason
from .bias import cell_bias
from .constants import SRCConstants
from .export import exporting_onnx, src_recurrence_scan
from .ops.recurrence import constants_args, functorch_differentiating, src_recurrence_fused
from .projection import autocast_enabled, input_projection, small_eager_input
from .reference import State, src_recurrence_reference
from .state import SRCState

BACKENDS = ("auto", "fused", "reference")


def validate_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"SRC: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def use_fused(backend: str, device: torch.device) -> bool:
    if backend == "reference":
        return False
    if device.type == "meta":  # shapes only: the ops' fake kernels serve the meta device
        return backend == "fused" and fused_available("cpu")
    if backend == "fused":
        if not fused_available(device):
            raise RuntimeError(
                f"SRC: backend='fused' is not available for {device}: {fused_unavailable_reason(device)}"
            )
        return True
    # torch.func.grad / jvp cannot differentiate the fused ops (srcext.ops): 'auto' takes the
    # reference there, the same results in pure PyTorch
    return fused_available(device) and not functorch_differentiating()


def _eager() -> bool:
    """Not under torch.compile, export or torch.jit's tracer, and no torch.func transform."""
    return not (
        torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch._C._get_tracing_state() is not None
        or torch._C._functorch.get_interpreter_stack()
    )


def _one_op_call(x, weight: torch.Tensor, state: State, mode: str) -> bool:
    """Whether a fused layer runs as the one op srcext::src_layer
    (csrc/recurrence/src_recurrence_autograd.cpp): the same ops as below, called from C++.
    Eagerly (compile, export and torch.func see the ops one by one), with the dense
    projection, all in the weight's dtype (no autocast)."""
    if not isinstance(x, torch.Tensor) or not _eager():
        return False
    if mode != "dense" and not (mode == "auto" and small_eager_input(x)):
        return False
    dtype = weight.dtype
    i, h, hs = state
    same = x.dtype == dtype and i.dtype == dtype and h.dtype == dtype and hs.dtype == dtype
    return same and not autocast_enabled(x.device.type)


def src_layer(
    x: torch.Tensor,
    weight: torch.Tensor,
    b: torch.Tensor,
    state: State,
    k: SRCConstants,
    detach_recurrent: bool,
    straight_through: bool,
    fused: bool,
    lengths: Optional[torch.Tensor] = None,
    bias_straight_through: bool = True,
    cell_constants: Optional[torch.Tensor] = None,
    input_projection_mode: str = "dense",
    emit_voltage: bool = False,
) -> Tuple[torch.Tensor, SRCState]:
    """One layer on time-major input (T, B, in): the projection of all steps at once (one
    GEMM, or from the input's events: see :mod:`srcext.events`), then the time loop.

    ``lengths`` (B,) int64 on x's device, or None: see the ops. ``bias_straight_through``:
    see :mod:`srcext.bias`. ``cell_constants``: a constants tensor (K,) or (K, H) (see
    :mod:`srcext.constants`) that replaces k's cell constants (k then gives bias_max only).
    ``x`` may be an :class:`srcext.events.Events`. ``emit_voltage``: the output is the voltage h
    of every step instead of the spikes."""
    cell = k if cell_constants is None else cell_constants
    if fused and _one_op_call(x, weight, state, input_projection_mode):
        constants, layer_constants = constants_args(cell, weight.shape[0], weight.dtype)
        spikes, *final = torch.ops.srcext.src_layer.default(
            x,
            weight,
            b,
            *state,
            constants,
            k.bias_max,
            bias_straight_through,
            detach_recurrent,
            straight_through,
            lengths,
            layer_constants,
            emit_voltage,
        )
        return spikes, SRCState(*final)
    u = input_projection(x, weight, input_projection_mode)  # (T, B, H)
    dtype = u.dtype
    bias = cell_bias(b, k.bias_max, bias_straight_through)
    if bias.dtype != dtype or any(s.dtype != dtype for s in state):  # autocast lowered u's dtype
        bias, state = bias.to(dtype), tuple(s.to(dtype) for s in state)
    run = src_recurrence_fused if fused else src_recurrence_reference
    if exporting_onnx() or (not fused and torch.compiler.is_exporting()):
        # a loop the exporter keeps, where the reference's Python loop would unroll at the
        # traced T: dynamic T (srcext.export); the fused op is kept by torch.export itself
        run = src_recurrence_scan
    options = {"emit_voltage": True} if emit_voltage else {}
    if lengths is not None:
        options["lengths"] = lengths
    spikes, final = run(u, bias, state, cell, detach_recurrent, straight_through, **options)
    return spikes, SRCState(*final)
