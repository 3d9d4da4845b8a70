"""The recurrence for program exporters: the reference cell under ``torch.scan``.

The fused ops are opaque to exporters: ONNX has no translation for them, and the reference's
Python loop unrolls into a graph fixed at the traced number of steps. Written as a scan
(torch's ``scan`` higher-order op), the time loop stays a loop: ``torch.onnx.export`` turns it
into one ONNX ``Scan`` whose step count, like the batch, comes from the input at run time.

The layers run it in place of either backend while ``torch.onnx.is_in_onnx_export()``, and
in place of the reference while ``torch.export`` traces (the fused op is kept there as it is);
it computes the same values and gradients as the reference.
torch's legacy exporter (``torch.onnx.export(..., dynamo=False)``) traces with TorchScript,
which cannot hold a scan: there the loop is a TorchScript function, which that exporter turns
into an ONNX ``Loop``, also dynamic in T and B.
"""

from __future__ import annotations

import functools
import warnings
from typing import List, Optional, Tuple

import torch

from .constants import CELL_CONSTANTS, SRCConstants, constants_tensor
from .reference import State, cell_constants, src_cell_step, src_cell_step_where


def exporting_onnx() -> bool:
    """True while torch.onnx.export traces the model (its dynamo and its legacy exporter).
    Both trace under torch.export or torch.jit's tracer, which are cheap to ask first (every
    call of a layer asks, and torch.onnx's own check imports its modules each time)."""
    if not (torch.compiler.is_exporting() or torch._C._get_tracing_state() is not None):
        return False
    return torch.onnx.is_in_onnx_export()


def src_recurrence_scan(
    u: torch.Tensor,
    bias: torch.Tensor,
    state: State,
    k,
    detach_recurrent: bool = True,
    straight_through: bool = True,
    lengths: Optional[torch.Tensor] = None,
    emit_voltage: bool = False,
) -> Tuple[torch.Tensor, State]:
    """:func:`srcext.reference.src_recurrence_reference` with its time loop as a scan; the
    same arguments and results (gradients included, for a program exported with them)."""
    if isinstance(k, SRCConstants):
        # as one tensor: the dynamo exporter rounds Python float constants through float32
        # (alpha = 0.9 became 0.89999998 in a float64 graph)
        k = constants_tensor(k, u.dtype, u.device)
    if torch.jit.is_tracing():  # the legacy exporter
        rows = k.to(u.dtype)
        if rows.dim() == 1:
            rows = rows.unsqueeze(1)  # (K, 1): broadcasts over (B, H) as (K, H) does
        plain, with_lengths = _scripted()
        if lengths is None:
            spikes, i, h, hs = plain(u, bias, *state, rows, emit_voltage)
        else:
            spikes, i, h, hs = with_lengths(u, bias, *state, rows, lengths.to(u.device), emit_voltage)
        return spikes, (i, h, hs)

    from torch._higher_order_ops.scan import scan

    k = cell_constants(k, u)
    # scan refuses inputs that alias each other (the rows of one constants tensor, a state
    # made of views of one buffer): separate copies
    for name in CELL_CONSTANTS:
        value = getattr(k, name)
        if isinstance(value, torch.Tensor):
            setattr(k, name, value.clone())
    state = [s.clone() for s in state]
    if lengths is None:

        def step(carry, u_t):
            s_t, new = src_cell_step(u_t, tuple(carry), bias, k, detach_recurrent, straight_through, emit_voltage)
            return list(new), s_t

        final, spikes = scan(step, state, u)
        return spikes, tuple(final)

    steps = torch.arange(u.shape[0], device=u.device, dtype=lengths.dtype)
    lengths = lengths.to(u.device)

    def masked_step(carry, xs):
        u_t, t = xs
        active = (lengths > t).unsqueeze(1)  # (B, 1)
        s_t, new = src_cell_step_where(
            active, u_t, tuple(carry), bias, k, detach_recurrent, straight_through, emit_voltage
        )
        return list(new), s_t

    final, spikes = scan(masked_step, state, (u, steps))
    return spikes, tuple(final)


assert CELL_CONSTANTS == ("alpha", "rho", "r", "r_s", "z", "z_hyp", "z_dep", "gate_slope", "gate_threshold")


# The legacy exporter's loop: TorchScript, so that it exports as an ONNX Loop. The equations of
# srcext.reference.src_cell_step (forward only), k's rows in the order of CELL_CONSTANTS
# (asserted above); the tests hold the exported graph to the layer. Two functions, not an
# Optional lengths: an Optional exports as If branches that onnxruntime cannot type. Scripted
# on first use (_scripted), not at import: torch.jit.script warns that it is deprecated.
def _cell_step_script(
    u_t: torch.Tensor, i: torch.Tensor, h: torch.Tensor, hs: torch.Tensor, bias: torch.Tensor, k: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    alpha, rho, r, r_s, z, z_hyp, z_dep = k[0], k[1], k[2], k[3], k[4], k[5], k[6]
    gate_slope, gate_threshold = k[7], k[8]
    i_new = alpha * i + u_t
    x = rho * torch.tanh(i_new / rho)
    zs = z_hyp + (z_dep - z_hyp) * torch.sigmoid(gate_slope * (h - gate_threshold))
    c = torch.tanh(x + r * h + r_s * hs + bias)
    return i_new, z * h + (1 - z) * c, zs * hs + (1 - zs) * h


def _recurrence_script(
    u: torch.Tensor,
    bias: torch.Tensor,
    i: torch.Tensor,
    h: torch.Tensor,
    hs: torch.Tensor,
    k: torch.Tensor,
    emit_voltage: bool,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    outputs: List[torch.Tensor] = []
    for t in range(u.size(0)):
        i, h, hs = _cell_step_script(u[t], i, h, hs, bias, k)
        outputs.append(h if emit_voltage else torch.relu(h))
    return torch.stack(outputs), i, h, hs


def _recurrence_lengths_script(
    u: torch.Tensor,
    bias: torch.Tensor,
    i: torch.Tensor,
    h: torch.Tensor,
    hs: torch.Tensor,
    k: torch.Tensor,
    lengths: torch.Tensor,
    emit_voltage: bool,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    outputs: List[torch.Tensor] = []
    for t in range(u.size(0)):
        active = (lengths > t).unsqueeze(1)
        u_t = torch.where(active, u[t], torch.zeros_like(u[t]))
        i_new, h_new, hs_new = _cell_step_script(u_t, i, h, hs, bias, k)
        out = h_new if emit_voltage else torch.relu(h_new)
        outputs.append(torch.where(active, out, torch.zeros_like(out)))
        i = torch.where(active, i_new, i)
        h = torch.where(active, h_new, h)
        hs = torch.where(active, hs_new, hs)
    return torch.stack(outputs), i, h, hs


@functools.cache
def _scripted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # (the step they call is scripted with them)
        return torch.jit.script(_recurrence_script), torch.jit.script(_recurrence_lengths_script)
