"""The fused srcext ops, one module per op family, as the kernels are laid out in csrc/:
:mod:`srcext.ops.recurrence` (the SRC time loop: ``src_forward``, ``src_backward``, ``src_layer``)
and :mod:`srcext.ops.events` (the event-driven projection). Each registers the fakes (and, where
not in C++, the autograd) of its ops at import.

The recurrence's Python API is re-exported here, as it was before the split.
"""

from . import events, recurrence
from .events import register_event_formulas
from .recurrence import (
    CHECKPOINT_INTERVAL,
    constant_args,
    constants_args,
    functorch_differentiating,
    num_checkpoints,
    refuse_functorch_derivatives,
    register_op_fakes,
    run_forward_op,
    src_recurrence_fused,
)

__all__ = [
    "CHECKPOINT_INTERVAL",
    "constant_args",
    "constants_args",
    "events",
    "functorch_differentiating",
    "num_checkpoints",
    "recurrence",
    "refuse_functorch_derivatives",
    "register_event_formulas",
    "register_op_fakes",
    "run_forward_op",
    "src_recurrence_fused",
]
