"""Pure-PyTorch reference of the Spiking Recurrent Cell.

This module is the oracle of the test suite: every fused kernel is checked against it.
It follows ``docs/model.md`` line by line and favours readability over speed.
It runs on any device and any floating dtype, with every option of the spec.

The recurrence works on the feed-forward drive ``u = W_s . s_in`` of all steps at once
(the GEMM is done outside, as in the fused path, by the layers of :mod:`srcext.layer`).
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

# The constants live in srcext.constants; SRCConstants, DEFAULTS and BIAS_INIT stay importable
# from here (and models pickled before the move name srcext.reference.SRCConstants).
from .sequences import check_op_lengths
from .constants import (
    BIAS_INIT,  # noqa: F401  (re-exported)
    CELL_CONSTANTS,
    DEFAULTS,
    SRCConstants,
    check_constants_tensor,
)

# The state of a layer, (i, h, hs), each (B, H); srcext.SRCState is the named form.
State = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class _TensorConstants:
    """The rows of a constants tensor as attributes (alpha, rho, ...), in ``dtype``: 0-dim
    tensors for per-layer (K,) constants, (H,) rows (broadcasting over (B, H)) per neuron."""

    def __init__(self, k: torch.Tensor, dtype: torch.dtype):
        for name, row in zip(CELL_CONSTANTS, k.to(dtype).unbind(0)):
            setattr(self, name, row)


def cell_constants(k: Union[SRCConstants, torch.Tensor], like: torch.Tensor):
    """``k`` with its cell constants as attributes: an SRCConstants as it is (floats), a
    constants tensor (K,) or (K, H) (see srcext.constants) as rows in ``like``'s dtype."""
    if isinstance(k, (SRCConstants, _TensorConstants)):
        return k
    check_constants_tensor(k, like.shape[-1], "srcext.reference")
    return _TensorConstants(k, like.dtype)


def straight_through_relu(h: torch.Tensor) -> torch.Tensor:
    """relu(h) forward, identity backward (the paper's surrogate ReLU).

    ``h + (relu(h) - h)`` is exactly ``relu(h)`` in floating point (0 - h = -h exactly,
    h + -h = 0), so the forward value is the true ReLU.
    """
    return h + (torch.relu(h) - h).detach()


def src_cell_step(
    u_t: torch.Tensor,
    state: State,
    bias: torch.Tensor,
    k: SRCConstants = DEFAULTS,
    detach_recurrent: bool = True,
    straight_through: bool = True,
    emit_voltage: bool = False,
) -> Tuple[torch.Tensor, State]:
    """One time step of one layer. ``bias`` is the effective bias min(b, bias_max). ``k``: an
    SRCConstants or a constants tensor (K,) / (K, H) (see :func:`cell_constants`).
    ``emit_voltage``: the step emits its voltage h instead of its spike relu(h)."""
    k = cell_constants(k, u_t)
    i_prev, h_prev, hs_prev = state
    if detach_recurrent:
        # h[t-1] and hs[t-1] enter step t as constants; only i carries gradient in time.
        h_prev, hs_prev = h_prev.detach(), hs_prev.detach()

    i = k.alpha * i_prev + u_t  # i[t]
    x = k.rho * torch.tanh(i / k.rho)  # x[t]
    zs = k.z_hyp + (k.z_dep - k.z_hyp) * torch.sigmoid(k.gate_slope * (h_prev - k.gate_threshold))
    c = torch.tanh(x + k.r * h_prev + k.r_s * hs_prev + bias)  # c[t]
    h = k.z * h_prev + (1 - k.z) * c  # h[t]
    hs = zs * hs_prev + (1 - zs) * h_prev  # hs[t], old h
    if emit_voltage:
        s_out = h  # the membrane voltage, for per-step readouts
    else:
        s_out = straight_through_relu(h) if straight_through else torch.relu(h)  # s_out[t]
    return s_out, (i, h, hs)


def src_cell_step_where(
    active: torch.Tensor,
    u_t: torch.Tensor,
    state: State,
    bias: torch.Tensor,
    k: SRCConstants = DEFAULTS,
    detach_recurrent: bool = True,
    straight_through: bool = True,
    emit_voltage: bool = False,
) -> Tuple[torch.Tensor, State]:
    """:func:`src_cell_step` for the samples where ``active`` (B, 1) is true; the others take
    no step: they emit 0 and keep their state. The time loops with lengths call it."""
    # The padding's values must not matter, not even a NaN: a step not taken sees 0.
    u_t = torch.where(active, u_t, torch.zeros_like(u_t))
    s_t, new_state = src_cell_step(u_t, state, bias, k, detach_recurrent, straight_through, emit_voltage)
    # torch.where, not a product with the mask: the skipped step's values (and their
    # gradients) are dropped exactly, and the old state passes through unchanged.
    s_t = torch.where(active, s_t, torch.zeros_like(s_t))
    return s_t, tuple(torch.where(active, new, old) for new, old in zip(new_state, state))


# The op's lengths check, under its name of before (it lives in srcext.sequences).
check_lengths = check_op_lengths


def src_recurrence_reference(
    u: torch.Tensor,
    bias: torch.Tensor,
    state: State,
    k: SRCConstants = DEFAULTS,
    detach_recurrent: bool = True,
    straight_through: bool = True,
    lengths: Optional[torch.Tensor] = None,
    emit_voltage: bool = False,
) -> Tuple[torch.Tensor, State]:
    """Run the cell over all steps of ``u`` (T, B, H) from ``state`` = (i0, h0, hs0), each (B, H).

    ``bias`` (H,) is the effective bias. Returns the spikes (T, B, H) and the final state.
    ``k``: an SRCConstants, or a constants tensor, per layer (K,) or per neuron (K, H), rows
    in the order of ``srcext.constants.CELL_CONSTANTS``; autograd flows into a tensor's.

    ``lengths`` (B,), integer, values in [0, T], gives each sample its own number of steps:
    sample b runs steps 0 .. lengths[b] - 1 only. Past them its spikes are 0, its state is
    frozen (no step is taken, so u[t, b] gets no gradient) and the returned final state is
    the state after its own last step (the initial state when lengths[b] == 0). Outputs and
    gradients equal running each sample alone on u[:lengths[b], b].

    ``emit_voltage``: the output is the voltage h of every step (0 past a sample's length)
    instead of its spikes.
    """
    check_op_lengths(lengths, u)
    if lengths is not None:
        lengths = lengths.to(u.device)
    k = cell_constants(k, u)  # once, not per step
    outputs = []
    # unbind, not u[t]: the backward of each u[t] would zero-fill a whole (T, B, H) gradient,
    # making the loop quadratic in T; unbind's backward stacks the steps' gradients once.
    for t, u_t in enumerate(u.unbind(0)):
        if lengths is None:
            s_t, state = src_cell_step(u_t, state, bias, k, detach_recurrent, straight_through, emit_voltage)
        else:
            active = (lengths > t).unsqueeze(1)  # (B, 1)
            s_t, state = src_cell_step_where(
                active, u_t, state, bias, k, detach_recurrent, straight_through, emit_voltage
            )
        outputs.append(s_t)
    if outputs:
        s = torch.stack(outputs)
    else:
        s = u.new_empty((0,) + tuple(state[0].shape))
    return s, state


def effective_bias(b: torch.Tensor, bias_max: float) -> torch.Tensor:
    """min(b, bias_max) with torch.clamp semantics: no gradient where clamped."""
    return torch.clamp(b, max=bias_max)
