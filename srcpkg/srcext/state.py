"""The state of SRC layers: the ``SRCState`` named tuple, the rest state (the cell's fixed
point with zero input), and the coercion of what users pass as a state.

Layout as torch.nn.GRU's ``h_n``: every field of a layer stack's state is
(num_layers * num_directions, B, hidden_size), row ``layer * num_directions + direction``,
so ``state.h[-1]`` is the last layer's h (of the reverse direction when bidirectional).
"""

from __future__ import annotations

import sys
from typing import NamedTuple, Optional, Tuple

import torch

from .constants import SRCConstants

INITIAL_STATES = ("rest", "zeros")

# The rest state's solver: the lowest sign change of F(h) = h - tanh(a h + b) on a grid of
# [-1, 1] brackets the lowest root (the hyperpolarised rest when the cell is bistable), then
# safeguarded Newton steps refine it to float64 precision. Fixed counts: no data-dependent
# control flow, so torch.compile traces it.
_GRID_POINTS = 129
_NEWTON_STEPS = 8


class SRCState(NamedTuple):
    """The state of the cell: the input integrator ``i``, the fast voltage ``h`` and the slow
    voltage ``hs``. Each (num_layers * num_directions, B, H) for :class:`srcext.SRC`,
    (B, H) for :class:`srcext.SRCCell`; without the batch dimension for unbatched input."""

    i: torch.Tensor
    h: torch.Tensor
    hs: torch.Tensor

    def detach(self) -> SRCState:
        """The same state cut from the autograd graph (truncated BPTT)."""
        return SRCState(*(s.detach() for s in self))

    def __getitem__(self, index):
        # nn.GRU code reads h_n[-1] as the last layer's h; by position this tuple's [-1] would
        # be hs, a silently wrong tensor of the same shape. Fields are read by name instead
        # (unpacking, i, h, hs = state, iterates and still works). torch's own code indexes
        # named tuples by position (the module torch.export's programs run flattens its
        # inputs so), and gets the fields.
        if sys._getframe(1).f_globals.get("__name__", "").startswith("torch."):
            return tuple.__getitem__(self, index)
        raise TypeError(
            "srcext: SRCState(i, h, hs) is not indexed by position: nn.GRU's h_n[-1] (the last "
            "layer's h) is state.h[-1] here; read the fields as state.i, state.h, state.hs "
            "or unpack them (i, h, hs = state)"
        )


def rest_voltage(bias: torch.Tensor, k: SRCConstants, r_plus_rs: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per neuron, the voltage h of the cell's rest state, in float64, without gradient.

    ``bias`` is the effective bias min(b, bias_max), any shape. With zero input the rest state
    is a fixed point of the cell: i = 0 (so x = 0), hs = h (the slow gate mixes h into hs),
    and h = z h + (1 - z) tanh((r + r_s) h + b), i.e. (z < 1) h = tanh((r + r_s) h + b).
    With the paper's constants (r + r_s = -5 < 1) that equation has exactly one root; when
    r + r_s > 1 it can have three (bistability) and the lowest, the hyperpolarised one, is
    returned. ``r_plus_rs``: r + r_s per neuron (bias's shape) where they are learned (then
    k's are not used).
    """
    with torch.no_grad():
        a = k.r + k.r_s if r_plus_rs is None else r_plus_rs
        if isinstance(a, torch.Tensor):
            a = a.detach().to(torch.float64).expand(bias.shape).reshape(-1, 1)  # (N, 1)
        else:
            a = float(a)
        b = bias.detach().to(torch.float64).reshape(-1, 1)  # (N, 1)
        grid = torch.linspace(-1.0, 1.0, _GRID_POINTS, dtype=torch.float64, device=b.device)
        nonneg = torch.tanh(b + a * grid) <= grid  # F >= 0
        # F(1) = 1 - tanh(.) >= 0, so some grid point is non-negative; the first one closes
        # the bracket of the lowest root (it is the root itself when F(-1) rounds to 0).
        first = torch.argmax(nonneg.to(torch.uint8), dim=1, keepdim=True)  # (N, 1)
        hi = grid[first]
        lo = grid[(first - 1).clamp_(min=0)]
        h = (lo + hi).mul_(0.5)
        for _ in range(_NEWTON_STEPS):
            t = torch.tanh(b + a * h)
            f = h - t
            below = f < 0
            lo = torch.where(below, h, lo)
            hi = torch.where(below, hi, h)
            # Newton's step h - F / F', F' = 1 - a (1 - t^2); bisection where it would leave
            # the bracket (or F' <= 0, possible only when a > 1).
            step = h - f / (t.square() * a + (1.0 - a))
            inside = (step >= lo) & (step <= hi)
            h = torch.where(inside, step, (lo + hi).mul_(0.5))
        return h.reshape(bias.shape)


def rest_state(voltage: torch.Tensor, batch_size: Optional[int], dtype: torch.dtype) -> SRCState:
    """The rest state of neurons whose :func:`rest_voltage` is ``voltage`` (..., H): fields of
    shape (..., batch_size, H), or (..., H) when ``batch_size`` is None (unbatched)."""
    h = voltage.to(dtype)
    if batch_size is not None:
        h = h.unsqueeze(-2).expand(*h.shape[:-1], batch_size, h.shape[-1])
    return SRCState(torch.zeros_like(h), h.clone(), h.clone())


def zero_state(shape: Tuple[int, ...], device, dtype: torch.dtype) -> SRCState:
    return SRCState(*(torch.zeros(shape, device=device, dtype=dtype) for _ in range(3)))


def coerce_state(state, owner: str, shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device) -> SRCState:
    """What users pass as a state, checked and as an :class:`SRCState`.

    * an ``SRCState``, or any tuple or list of the three tensors (i, h, hs);
    * a single tensor of the state's shape, as torch.nn.GRU's ``h``: taken as h, with i = 0
      and hs = h (a neuron that has sat at voltage h with no input; a zero tensor is the
      spec's zero state, the layer's rest h gives exactly the rest state);
    * an LSTM-style (h, c) pair, or anything else: a TypeError that says what to pass.

    ``dtype`` is the expected floating dtype, None to accept any floating dtype
    (under autocast).
    """
    if dtype is not None and state_fits(state, shape, dtype, device):  # a previous call's
        return state
    if isinstance(state, torch.Tensor):
        _check_field(state, "h (a GRU-style state tensor)", owner, shape, dtype, device)
        return SRCState(torch.zeros_like(state), state, state)
    if isinstance(state, (tuple, list)) and len(state) == 2:
        raise TypeError(
            f"{owner}: state is a pair of 2 (an LSTM (h, c) state?); SRC has no cell state c. "
            f"Pass an SRCState(i, h, hs) (e.g. the state a previous call returned, or "
            f"layer.initial_state(batch_size)), a single h tensor of shape {shape}, or None"
        )
    if not isinstance(state, (tuple, list)) or len(state) != 3:
        raise TypeError(
            f"{owner}: state must be an SRCState(i, h, hs), a tuple of 3 tensors, a single h "
            f"tensor or None; got {type(state).__name__}"
            + (f" of length {len(state)}" if isinstance(state, (tuple, list)) else "")
        )
    for label, s in zip(SRCState._fields, state):
        _check_field(s, label, owner, shape, dtype, device)
    return SRCState(*state)


def state_fits(state, shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device) -> bool:
    """Whether ``state`` is an SRCState of tensors of this shape, dtype and device (what a
    previous call returned), tested at once (a streaming loop passes one per step)."""
    if type(state) is not SRCState:
        return False
    i, h, hs = state
    return (
        type(i) is torch.Tensor
        and type(h) is torch.Tensor
        and type(hs) is torch.Tensor
        and i.shape == shape
        and h.shape == shape
        and hs.shape == shape
        and i.dtype == dtype
        and h.dtype == dtype
        and hs.dtype == dtype
        and i.device == device
        and h.device == device
        and hs.device == device
    )


def _check_field(s, label: str, owner: str, shape, dtype, device) -> None:
    if not isinstance(s, torch.Tensor):
        raise TypeError(f"{owner}: state {label} must be a tensor, got {type(s).__name__}")
    if tuple(s.shape) != tuple(shape):
        raise ValueError(f"{owner}: state {label} must have shape {tuple(shape)}, got {tuple(s.shape)}")
    if not s.dtype.is_floating_point:
        raise TypeError(f"{owner}: state {label} must be floating point, got {s.dtype}")
    if dtype is not None and s.dtype != dtype:
        raise TypeError(f"{owner}: state {label} has dtype {s.dtype} but input has {dtype}")
    if s.device != device:
        raise ValueError(f"{owner}: state {label} is on {s.device} but input is on {device}")
