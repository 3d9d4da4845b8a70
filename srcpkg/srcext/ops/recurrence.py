"""The recurrence ops (``src_forward``, ``src_backward``) as Python calls them, and their fake
(meta) implementations.

The op schemas, kernels and autograd live in C++ (csrc/recurrence: its schemas, cpu/, cuda/;
src_recurrence_autograd.h makes ``src_backward``, itself an op, the derivative of ``src_forward``,
with no Python on a call's path). Here ``register_fake`` gives both ops shapes without data,
for torch.compile and export.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from .._extension import extension_loaded
from ..constants import ConstantsLike, SRCConstants, acc_dtype, check_constants_tensor, constants_tensor
from ..reference import State
from ..sequences import check_op_lengths

# Must equal kCheckpointInterval in csrc/recurrence/src_recurrence_params.h (opcheck tests compare the two).
CHECKPOINT_INTERVAL = 16
# Set to "1", the CUDA kernels run one neuron a thread where they would run two (a developer's
# A/B of the two kernel instances: csrc/recurrence/cuda/src_recurrence_kernels.cuh,
# forward_lanes and backward_lanes; read at each launch).
LANES_ENV = "SRCEXT_CUDA_LANES"


def num_checkpoints(T: int) -> int:
    """How many states the forward saves for the backward: one before every
    CHECKPOINT_INTERVAL-th step (num_checkpoints in csrc/recurrence/src_recurrence_params.h)."""
    return (T + CHECKPOINT_INTERVAL - 1) // CHECKPOINT_INTERVAL


_LAYER_VALUES: dict = {}


def _layer_values(k: SRCConstants) -> List[float]:
    """k.cell_values() as a list, made once per constants object (a step-by-step SRCCell loop
    calls the op per step; by identity, since hashing the dataclass costs as much as the rest
    of the lookup; SRCConstants is frozen, and the entry keeps k alive so its id is not reused)."""
    entry = _LAYER_VALUES.get(id(k))
    if entry is None or entry[0] is not k:
        if len(_LAYER_VALUES) >= 64:
            _LAYER_VALUES.clear()
        entry = _LAYER_VALUES[id(k)] = (k, list(k.cell_values()))
    return entry[1]


def constants_args(k: ConstantsLike, hidden: int, dtype: torch.dtype) -> Tuple[Optional[torch.Tensor], List[float]]:
    """The ops' ``(constants, layer_constants)`` for ``k``, for a layer of ``hidden`` neurons
    with inputs of ``dtype``. An SRCConstants: no tensor, its K values as floats (the kernels
    take per-layer values on the host; and a compiled graph then has no host tensor to keep
    for the backward, which CUDA graphs could not hold). A tensor (K,) or (K, H): itself, in
    the precision of the math (differentiably)."""
    if isinstance(k, SRCConstants):
        # lru_cache is opaque to torch.compile: there the values are traced (constants).
        return None, list(k.cell_values()) if torch.compiler.is_compiling() else _layer_values(k)
    check_constants_tensor(k, hidden)
    acc = acc_dtype(dtype)
    return (k if k.dtype == acc else k.to(acc)), []


def constant_args(k: SRCConstants, dtype: torch.dtype = torch.float32) -> tuple:
    """The constants argument of the ops for inputs of ``dtype``, as a 1-tuple: a direct op
    call reads ``op(u, bias, i0, h0, hs0, *constant_args(k, u.dtype), ...)``."""
    return (constants_tensor(k, acc_dtype(dtype)),)


def src_recurrence_fused(
    u: torch.Tensor,
    bias: torch.Tensor,
    state: State,
    k: ConstantsLike,
    detach_recurrent: bool = True,
    straight_through: bool = True,
    lengths: Optional[torch.Tensor] = None,
    emit_voltage: bool = False,
) -> Tuple[torch.Tensor, State]:
    """The fused equivalent of :func:`srcext.reference.src_recurrence_reference`, lengths
    and emit_voltage included (int32 or int64 (B,), on any device: it is moved to u's). ``k``: an
    SRCConstants, or a constants tensor (K,) per layer / (K, H) per neuron (see
    :mod:`srcext.constants`), which gets a gradient when it requires one."""
    return run_forward_op(
        torch.ops.srcext.src_forward, u, bias, state, k, detach_recurrent, straight_through, lengths, emit_voltage
    )


def functorch_differentiating() -> bool:
    """Whether torch.func.grad / jvp (or jacrev, jacfwd, hessian, built on them) is active:
    torch cannot differentiate these custom ops there (it fails deep inside, or, for jvp,
    silently returns a zero tangent). torch.func.vmap is fine: it runs the op per sample."""
    if torch.compiler.is_compiling():
        return False
    stack = torch._C._functorch.get_interpreter_stack()
    return bool(stack) and any(i.key() in _FUNCTORCH_DERIVATIVES for i in stack)


_FUNCTORCH_DERIVATIVES = (torch._C._functorch.TransformType.Grad, torch._C._functorch.TransformType.Jvp)


def refuse_functorch_derivatives() -> None:
    """A clear error where :func:`functorch_differentiating` (backend='auto' layers take the
    reference there instead, so only an explicit backend='fused' gets here)."""
    if functorch_differentiating():
        raise RuntimeError(
            "srcext: the fused kernels cannot be differentiated under torch.func.grad / jvp "
            "(jacrev, jacfwd, hessian); use backend='reference' or 'auto' there (same results, "
            "pure PyTorch), or torch.autograd.grad for the fused backend"
        )


def run_forward_op(forward_op, u, bias, state, k, detach_recurrent, straight_through, lengths=None, emit_voltage=False):
    """Call a ``src_forward`` op (srcext's, or the CUDA emulation's in the tests), keeping the
    checkpoints only when a gradient will be asked for."""
    refuse_functorch_derivatives()
    if lengths is not None:
        check_op_lengths(lengths, u)
        lengths = lengths.to(u.device)
    constants, layer_constants = constants_args(k, u.shape[-1], u.dtype)
    i0, h0, hs0 = state
    save = torch.is_grad_enabled() and (
        u.requires_grad
        or bias.requires_grad
        or i0.requires_grad
        or h0.requires_grad
        or hs0.requires_grad
        or (constants is not None and constants.requires_grad)
    )
    extra = {"emit_voltage": True} if emit_voltage else {}  # the schema's default otherwise
    spikes, i_n, h_n, hs_n, _ = forward_op(
        u, bias, i0, h0, hs0, constants, detach_recurrent, straight_through, save, lengths, layer_constants, **extra
    )
    return spikes, (i_n, h_n, hs_n)


def register_op_fakes(namespace: str = "srcext") -> None:
    """Register the fake (meta) implementations of the ops ``{namespace}::src_forward`` and
    ``{namespace}::src_backward`` (their autograd is in C++: csrc/recurrence/src_recurrence_autograd.h).

    Done for ``srcext`` at import. The tests call it once more for the host emulation of the
    CUDA kernels, which defines the same ops in a namespace of its own.
    """

    @torch.library.register_fake(f"{namespace}::src_forward")
    def _src_forward_fake(
        u,
        bias,
        i0,
        h0,
        hs0,
        constants,
        detach_recurrent,
        straight_through,
        save_for_backward,
        lengths=None,
        layer_constants=(),
        emit_voltage=False,
    ):
        T, B, H = u.shape
        acc = acc_dtype(u.dtype)
        if save_for_backward:
            checkpoints = u.new_empty((num_checkpoints(T), 3, B, H), dtype=acc)
        else:
            checkpoints = u.new_empty((0,), dtype=acc)
        return (u.new_empty((T, B, H)), u.new_empty((B, H)), u.new_empty((B, H)), u.new_empty((B, H)), checkpoints)

    @torch.library.register_fake(f"{namespace}::src_backward")
    def _src_backward_fake(
        grad_spikes,
        grad_i_n,
        grad_h_n,
        grad_hs_n,
        u,
        bias,
        checkpoints,
        constants,
        detach_recurrent,
        straight_through,
        constants_grad,
        lengths=None,
        layer_constants=(),
    ):
        T, B, H = grad_spikes.shape
        g = grad_spikes
        no_grad = g.new_empty((0,), dtype=acc_dtype(g.dtype))  # on g's device, as the kernels'
        grad_constants = torch.empty_like(constants) if constants_grad else no_grad
        return (
            g.new_empty((T, B, H)),
            torch.empty_like(bias),
            g.new_empty((B, H)),
            g.new_empty((B, H)),
            g.new_empty((B, H)),
            grad_constants,
        )


if extension_loaded():
    register_op_fakes("srcext")
