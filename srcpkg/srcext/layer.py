"""The SRC layers: ``SRC`` (a stack of layers over a sequence, used like torch.nn.GRU) and
``SRCCell`` (one step at a time, used like torch.nn.GRUCell).

What they share (construction checks, parameters, the start state, the stored state of the
stateful form, input casting) is in ``_SRCBase``; the state itself is in ``state.py``, the
variable-length helpers in ``sequences.py``, the bias's gradient in ``bias.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
import sys
import warnings
import weakref
from typing import List, Optional, Tuple, Union

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from ._extension import fused_available, fused_unavailable_reason
from .bias import cell_bias
from .constants import (
    BIAS_INIT,
    CELL_CONSTANTS,
    DEFAULTS,
    SRCConstants,
    check_learn,
    constrained,
    raw_value,
    validate_constants,
)
from .events import (
    as_events,
    autocast_enabled,
    input_projection,
    is_event_input,
    small_eager_input,
    validate_projection,
)
from .ops import _layer_values, constants_args, functorch_differentiating, src_recurrence_fused
from .rate_targeting import solve_log_scale, spike_counts
from .export import exporting_onnx, src_recurrence_scan
from .reference import State, src_recurrence_reference
from .sequences import check_lengths, pack_like, reverse_within_lengths, unpack, zero_padding
from .silence import SilenceWatch
from .state import INITIAL_STATES, SRCState, coerce_state, rest_state, rest_voltage, state_fits, zero_state

# Each layer's rest voltages and the key they were solved for (see _cached_rest_voltage);
# weak, so the cache neither keeps a layer alive nor travels with it (pickle, deepcopy).
_REST_VOLTAGES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Per layer, the last rest start state a fused call ran from, as views of its rest voltage:
# (voltage, batch, dtype, state). A step-by-step loop starts every call from it.
_REST_STARTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

BACKENDS = ("auto", "fused", "reference")
# The firing rate the data-dependent initialisation sets each layer to on its first training
# batch (init_rate=); the search stops within DATA_INIT_TOLERANCE of it (relative).
DEFAULT_INIT_RATE = 0.05
DATA_INIT_TOLERANCE = 0.2
DATA_INIT_MAX_EVALUATIONS = 16
DATA_INIT_MAX_SCALE = 2.0**10
# Spike tensors of these dtypes are cast to the parameters' dtype; other non-float dtypes
# are refused (an int64 tensor is more likely indices than spikes).
SPIKE_DTYPES = (torch.bool, torch.uint8)
# What the last layer emits per step (output=): its spikes relu(h), or its membrane voltage h
# (the per-step readout; layers below the last always pass spikes on).
OUTPUTS = ("spikes", "voltage")


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
    """Whether a fused layer runs as the one op srcext::src_layer (csrc/src_autograd.cpp): the
    same ops as below, called from C++. Eagerly (compile, export and torch.func see the ops
    one by one), with the dense projection, all in the weight's dtype (no autocast)."""
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


def _state_or_hx(state, hx, owner: str):
    """``hx=`` is torch.nn.GRU's name for the state argument; accepted as an alias."""
    if hx is not None:
        if state is not None:
            raise TypeError(f"{owner}: got both state and hx (hx is an alias of state)")
        return hx
    return state


def _positive_int(owner: str, name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def _outside_compile(reason: str):
    """torch.compiler.disable with the reason torch.compile reports (the keyword is recent)."""
    try:
        return torch.compiler.disable(reason=reason)
    except TypeError:
        return torch.compiler.disable


def _called_mid_sequential(module: nn.Module) -> bool:
    """Whether ``module`` is being called by a torch.nn.Sequential that has more modules after it
    (read from the caller's frames: done once per module, not per call)."""
    frame = sys._getframe(1)
    for _ in range(8):  # forward <- _call_impl <- _wrapped_call_impl <- Sequential.forward
        frame = frame.f_back
        if frame is None:
            return False
        if frame.f_code is nn.Sequential.forward.__code__:
            modules = list(frame.f_locals.get("self", ()))
            return any(m is module for m in modules[:-1])
    return False


def _checked_constants(value, owner: str) -> SRCConstants:
    if not isinstance(value, SRCConstants):
        raise TypeError(f"{owner}: constants must be an srcext.SRCConstants, got {type(value).__name__}")
    validate_constants(value, owner)
    return value


def _is_batch_size(value) -> bool:
    """A non-negative int, or a size torch keeps symbolic: a SymInt (torch.compile / export),
    or the 0-dim integer tensor torch.jit.trace gives for x.shape[1]."""
    if isinstance(value, torch.SymInt):
        return True
    if isinstance(value, torch.Tensor):
        return torch.jit.is_tracing() and value.dim() == 0 and not value.is_floating_point()
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _storage_key(t: torch.Tensor):
    """(data pointer, version) of a tensor with storage, None for one without (a torch.func
    wrapper, a fake tensor): those are never cached."""
    try:
        return (t.data_ptr(), t._version)
    except RuntimeError:
        return None


def _sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed in place over the ranks of the default process group (as it is outside
    torch.distributed)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


class _SRCBase(nn.Module):
    # Attributes added after the first release, with the values that keep a module pickled
    # by that release (torch.save(model)) behaving as it did: zero start, clamp gradient.
    _PICKLE_DEFAULTS = dict(
        initial_state_kind="zeros",
        bias_straight_through=False,
        stateful=False,
        return_state=True,
        state=None,
        _spike_recorder=None,
        _bias_trainable=True,
        dropout=0.0,
        bidirectional=False,
        num_directions=1,
        learn=(),
        per_neuron=False,
        input_projection="dense",
        init_rate=None,
        output="spikes",
        _data_init_pending=False,
        _silence_watch=None,
        _sequential_checked=False,
    )

    def __init__(
        self,
        input_size,
        hidden_size,
        bias,
        backend,
        detach_recurrent,
        straight_through,
        bias_straight_through,
        constants,
        bias_init,
        weight_scale,
        initial_state,
        stateful,
        return_state,
        learn=(),
        per_neuron=False,
        init_rate="auto",
        output="spikes",
        device=None,
    ):
        super().__init__()
        name = type(self).__name__
        self.input_size = _positive_int(name, "input_size", input_size)
        self.hidden_size = _positive_int(name, "hidden_size", hidden_size)
        self.backend = backend
        self.detach_recurrent = bool(detach_recurrent)
        self.straight_through = bool(straight_through)
        self.bias_straight_through = bool(bias_straight_through)
        self.constants = SRCConstants(**constants)  # validated by the property's setter
        self.learn = check_learn(learn, name)
        if not isinstance(per_neuron, bool):
            raise TypeError(f"{name}: per_neuron must be True or False, got {per_neuron!r}")
        if per_neuron and not self.learn:
            raise ValueError(
                f"{name}: per_neuron=True needs learn=(...) naming the constants "
                "to learn per neuron (fixed constants are the same for all)"
            )
        self.per_neuron = per_neuron
        if not isinstance(bias_init, numbers.Real) or not math.isfinite(bias_init):
            raise ValueError(f"{name}: bias_init must be a finite number, got {bias_init!r}")
        self.bias_init = float(bias_init)
        # "auto": a scale the user chose is kept; otherwise the data sets it.
        if isinstance(init_rate, str) and init_rate == "auto":
            init_rate = DEFAULT_INIT_RATE if weight_scale is None else None
        if weight_scale is None:
            weight_scale = 1.0
        if not (isinstance(weight_scale, numbers.Real) and math.isfinite(weight_scale) and weight_scale > 0):
            raise ValueError(f"{name}: weight_scale must be a positive number, got {weight_scale!r}")
        self.weight_scale = float(weight_scale)
        if init_rate is not None and (
            not isinstance(init_rate, numbers.Real) or isinstance(init_rate, bool) or not 0.0 < init_rate < 1.0
        ):
            raise ValueError(
                f"{name}: init_rate must be a firing rate in (0, 1), 'auto' or None (no data init), got {init_rate!r}"
            )
        self.init_rate = None if init_rate is None else float(init_rate)
        if output not in OUTPUTS:
            raise ValueError(f"{name}: output must be one of {OUTPUTS}, got {output!r}")
        self.output = output
        # Whether the data-dependent init has run (or is not wanted): a buffer, so it is saved
        # with the weights and a loaded checkpoint is never initialised again.
        self.register_buffer("data_init_done", torch.tensor(init_rate is None, device=device))
        self._data_init_pending = init_rate is not None  # its host copy: no device read per call
        self._silence_watch: Optional[SilenceWatch] = None
        self._sequential_checked = False  # the nn.Sequential check of _finish, done once
        if not isinstance(bias, bool):
            raise TypeError(f"{name}: bias must be True or False, got {bias!r}")
        self._bias_trainable = bias
        if initial_state not in INITIAL_STATES:
            raise ValueError(f"{name}: initial_state must be one of {INITIAL_STATES}, got {initial_state!r}")
        self.initial_state_kind = initial_state
        self.stateful = bool(stateful)
        self.return_state = bool(return_state)
        self.state: Optional[SRCState] = None  # the carried state of the stateful form
        self._spike_recorder = None  # set by srcext.calibration while recording

    def __getstate__(self) -> dict:
        # A copy or a saved module carries the values of the carried state, not its autograd
        # graph (copy.deepcopy refuses non-leaf tensors).
        state = dict(super().__getstate__())
        if state.get("state") is not None:
            state["state"] = state["state"].detach()
        state["_silence_watch"] = None  # what one training run saw is not the copy's
        return state

    def __setstate__(self, state: dict) -> None:
        owner = type(self).__name__
        missing = [key for key in ("input_size", "hidden_size", "_backend") if key not in state]
        if "constants" not in state and "_constants" not in state:
            missing.append("constants")
        if missing:
            raise ValueError(
                f"{owner}: the pickled module lacks {', '.join(missing)}: it is not a complete "
                f"srcext {owner} (a damaged or foreign checkpoint); save and load a state_dict instead"
            )
        if "constants" in state:  # pickled before constants became a validated property
            state["_constants"] = state.pop("constants")
        _checked_constants(state["_constants"], owner)
        for key, value in self._PICKLE_DEFAULTS.items():
            state.setdefault(key, value)
        super().__setstate__(state)
        if "data_init_done" not in self._buffers:  # pickled before the data init: its weights are final
            self.register_buffer("data_init_done", torch.tensor(True))

    @property
    def constants(self) -> SRCConstants:
        """The cell constants (an :class:`SRCConstants`); assigning checks them as the
        constructor does."""
        return self._constants

    @constants.setter
    def constants(self, value: SRCConstants) -> None:
        self._constants = _checked_constants(value, type(self).__name__)

    @property
    def backend(self) -> str:
        """ "fused", "reference" or "auto"; may be changed after construction."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = validate_backend(value)

    # ---- parameters -----------------------------------------------------------------------

    def _register_unit(self, weight_name: str, bias_name: str, fan_in: int, factory) -> None:
        self.register_parameter(weight_name, nn.Parameter(torch.empty(self.hidden_size, fan_in, **factory)))
        bias = torch.empty(self.hidden_size, **factory)
        if self._bias_trainable:
            self.register_parameter(bias_name, nn.Parameter(bias))
        else:  # bias=False: b stays at bias_init; a buffer, so it moves with .to() and saves
            self.register_buffer(bias_name, bias)
        # The learnable constants of this unit, stored unconstrained (see srcext.constants).
        suffix = weight_name[len("weight") :]
        shape = (self.hidden_size,) if self.per_neuron else ()
        for name in self.learn:
            self.register_parameter(f"{name}_raw{suffix}", nn.Parameter(torch.empty(shape, **factory)))

    def _reset_learned_constants(self) -> None:
        """Every learnable constant back at its initial value (the constructor's)."""
        with torch.no_grad():
            for suffix, _, _ in self._units():
                for name in self.learn:
                    getattr(self, self._raw_name(name, suffix)).fill_(raw_value(name, getattr(self.constants, name)))

    @staticmethod
    def _raw_name(name: str, suffix: str) -> str:
        return f"{name}_raw_{suffix}" if suffix else f"{name}_raw"

    def _unit_constants(self, suffix: str) -> Optional[torch.Tensor]:
        """The constants tensor of a unit with learnable constants, (K,) or (K, H) in the
        parameters' dtype (differentiable), or None: the fixed self.constants."""
        if not self.learn:
            return None
        rows = {name: constrained(name, getattr(self, self._raw_name(name, suffix))) for name in self.learn}
        ref = next(iter(rows.values()))
        return torch.stack(
            [
                rows[name] if name in rows else torch.full_like(ref, getattr(self.constants, name))
                for name in CELL_CONSTANTS
            ]
        )

    def cell_constants(self, layer: int = 0, reverse: bool = False) -> torch.Tensor:
        """The cell constants a layer runs with, (K,) or, per neuron, (K, H), rows in the
        order of ``srcext.constants.CELL_CONSTANTS``: the learned values where ``learn`` names
        them (differentiable), the fixed ones elsewhere."""
        units = self._units()
        suffix = units[layer * getattr(self, "num_directions", 1) + int(reverse)][0]
        k = self._unit_constants(suffix)
        if k is None:
            w = self._first_weight()
            k = torch.tensor(self.constants.cell_values(), dtype=w.dtype, device=w.device)
        return k

    def _init_unit(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        # Weights as torch.nn.Linear, U(-1/sqrt(in), 1/sqrt(in)), times weight_scale; biases at
        # the spec's -6.
        bound = self.weight_scale / math.sqrt(weight.shape[1])
        with torch.no_grad():
            weight.uniform_(-bound, bound)
            bias.fill_(self.bias_init)

    def _units(self) -> List[Tuple[str, nn.Parameter, torch.Tensor]]:
        """(name suffix, weight, bias) of each layer-direction, in the order they run."""
        raise NotImplementedError

    def _first_weight(self) -> nn.Parameter:
        return self._units()[0][1]

    def flatten_parameters(self) -> None:
        """A no-op, for code written for torch.nn.GRU (SRC keeps no cuDNN weight buffer)."""

    # ---- data-dependent initialisation -----------------------------------------------------
    #
    # A layer's firing depends on the scale of its input, which no data-free init can know (a
    # 2 % spike input and N(0, 1) features differ by orders of magnitude), so the weights are
    # scaled once, on the first training batch, to fire at init_rate (as weight norm's
    # data-dependent init or LSUV): layer by layer in the order they run, each on the input it
    # actually gets. Deterministic; under DistributedDataParallel every rank sums the counts of
    # all ranks, so all choose the same scales; saved (data_init_done) so a loaded checkpoint
    # is never initialised again; run eagerly, outside any torch.compile graph.

    def _data_init_rearm(self) -> None:
        """After new weights: the next training batch scales them (unless init_rate=None)."""
        self.data_init_done.fill_(self.init_rate is None)
        self._data_init_pending = self.init_rate is not None

    def _data_init_settled(self) -> None:
        """The weights are final as they are (initialised, or calibrated by the user)."""
        self.data_init_done.fill_(True)
        self._data_init_pending = False

    def _data_init_now(self, device: torch.device) -> bool:
        """Whether this call initialises: the first call in training mode with gradients on
        (not on the meta device, which has no data to fit)."""
        return self._data_init_pending and self.training and torch.is_grad_enabled() and device.type != "meta"

    @_outside_compile(
        "SRC: the data-dependent init (init_rate) runs once, eagerly, on the first training batch; "
        "run one step before compiling with fullgraph=True, or pass init_rate=None"
    )
    def _data_init_unit(self, suffix, x, weight, bias, state, lengths, fused) -> None:
        """Scale ``weight`` (in place) so that its unit fires at init_rate on ``x``."""
        with torch.no_grad():
            original = weight.detach().clone()

            def rate_at(log_scale: float) -> float:
                spikes, _ = self._unit_outputs(suffix, x, original * math.exp(log_scale), bias, state, lengths, fused)
                fired, total = _sum_over_ranks(torch.stack(spike_counts(spikes, lengths))).tolist()
                return fired / total if total else self.init_rate  # no step: nothing to fit

            best, _, _ = solve_log_scale(
                rate_at, self.init_rate, DATA_INIT_TOLERANCE, DATA_INIT_MAX_EVALUATIONS, DATA_INIT_MAX_SCALE
            )
            weight.copy_(original * math.exp(best))

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        # args: local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        super()._load_from_state_dict(state_dict, prefix, *args)
        missing_keys = args[2]
        key = prefix + "data_init_done"
        if key in missing_keys:  # a checkpoint from before the data init: its weights are final
            missing_keys.remove(key)
            self.data_init_done.fill_(True)
        self._data_init_pending = not bool(self.data_init_done)

    # ---- state ----------------------------------------------------------------------------

    def _state_rows(self) -> Optional[int]:
        """Leading dimension of the state (num_layers * num_directions), None for a cell."""
        raise NotImplementedError

    def initial_state(self, batch_size: Optional[int] = None, *, kind: Optional[str] = None) -> SRCState:
        """The state a call with ``state=None`` starts from, for ``batch_size`` samples
        (None: unbatched), on the parameters' device and dtype, without gradient.

        ``kind``: ``"rest"`` (the default unless the layer was built with
        ``initial_state="zeros"``): per neuron the cell's fixed point with zero input for its
        bias min(b, bias_max): i = 0, hs = h, h the root of h = tanh((r + r_s) h + b) (the
        lowest one if the constants make the cell bistable), found by Newton's method in
        float64 (:func:`srcext.state.rest_voltage`). A neuron at rest stays there without
        input and a strong input makes it spike at once. ``"zeros"``: the spec's all-zero
        start (the paper's): the neuron first relaxes to rest and cannot spike for about 11
        steps whatever its input.
        """
        kind = self.initial_state_kind if kind is None else kind
        owner = type(self).__name__
        if kind not in INITIAL_STATES:
            raise ValueError(f"{owner}: kind must be one of {INITIAL_STATES}, got {kind!r}")
        if batch_size is not None and not _is_batch_size(batch_size):
            raise ValueError(f"{owner}: batch_size must be a non-negative int or None, got {batch_size!r}")
        weight = self._first_weight()
        rows = self._state_rows()
        if kind == "zeros":
            shape = (
                ((rows,) if rows is not None else ())
                + ((batch_size,) if batch_size is not None else ())
                + (self.hidden_size,)
            )
            return zero_state(shape, weight.device, weight.dtype)
        voltage = self._rest_voltage()
        return rest_state(voltage if rows is not None else voltage[0], batch_size, weight.dtype)

    def _rest_voltage(self) -> torch.Tensor:
        """rest_voltage of every unit's effective bias, (units, H), solved once per value of
        the biases and constants: every call with state=None needs it, and solving takes ~40
        small ops (kernel launches on a GPU). The key holds each bias tensor's version
        counter, which every in-place update (an optimizer step, load_state_dict) advances.
        Not cached while torch.compile traces."""
        units = self._units()

        def solve():
            biases = torch.stack([cell_bias(b.detach(), self.constants.bias_max, False) for _, _, b in units])
            a = None
            if "r" in self.learn or "r_s" in self.learn:  # the learned values, (units, H)
                r, r_s = CELL_CONSTANTS.index("r"), CELL_CONSTANTS.index("r_s")
                a = torch.stack(
                    [
                        (k[r] + k[r_s]).detach().expand(self.hidden_size)
                        for k in (self._unit_constants(suffix) for suffix, _, _ in units)
                    ]
                )
            return rest_voltage(biases, self.constants, a)

        if torch.compiler.is_compiling():
            return solve()
        # (the module's own parameters: named_parameters() costs more than the rest together)
        tensors = [b for _, _, b in units] + [p for name, p in self._parameters.items() if "_raw" in name]
        storage = [_storage_key(t) for t in tensors]
        if any(k is None for k in storage):  # under torch.func, or without storage: no cache
            return solve()
        key = (self.constants, tuple(storage), tuple((b.dtype, b.device) for _, _, b in units))
        cached = _REST_VOLTAGES.get(self)
        if cached is None or cached[0] != key:
            cached = (key, solve())
            _REST_VOLTAGES[self] = cached
        return cached[1]

    def reset_state(self) -> None:
        """Forget the carried state (stateful form): the next call starts from
        :meth:`initial_state`. Call it between independent sequences."""
        self.state = None

    def detach_state(self) -> None:
        """Cut the carried state from the autograd graph (truncated BPTT): the next call
        continues from the same values, but no gradient flows back into earlier calls."""
        if self.state is not None:
            self.state = self.state.detach()

    # spikingjelly.activation_based.functional.reset_net / detach_net call these.
    reset = reset_state
    detach = detach_state

    def _rest_start(self, batch: Optional[int]) -> SRCState:
        """initial_state(batch) for a fused call's own use: views of the cached rest voltage
        (zeros and expansions, no copies), made once per voltage, batch and dtype. Safe as
        the fused ops never write their inputs and return new tensors even at T = 0."""
        voltage = self._rest_voltage()
        dtype = self._first_weight().dtype
        cached = _REST_STARTS.get(self)
        if cached is not None and cached[0] is voltage and cached[1] == batch and cached[2] == dtype:
            return cached[3]
        h = voltage.to(dtype) if self._state_rows() is not None else voltage[0].to(dtype)
        if batch is not None:
            h = h.unsqueeze(-2).expand(*h.shape[:-1], batch, h.shape[-1])
        start = SRCState(h.new_zeros(()).expand(h.shape), h, h)
        _REST_STARTS[self] = (voltage, batch, dtype, start)
        return start

    def _start_state(self, state, batch: int, unbatched: bool, x: torch.Tensor, fused: bool = False) -> SRCState:
        """The checked start state, batched: fields (rows, B, H) for SRC, (B, H) for a cell."""
        owner = type(self).__name__
        rows = self._state_rows()
        shape = ((rows,) if rows is not None else ()) + (() if unbatched else (batch,)) + (self.hidden_size,)
        weight = self._first_weight()
        expected = None if autocast_enabled(x.device.type) else weight.dtype
        if state is None and self.stateful and self.state is not None:
            stored = self.state
            if tuple(stored.i.shape) != shape:
                raise ValueError(
                    f"{owner}: the carried state (stateful=True) has shape "
                    f"{tuple(stored.i.shape)} but this input needs {shape}; call "
                    f"reset_state() between sequences of different batch sizes"
                )
            state = stored
        if state is None:
            cacheable = fused and self.initial_state_kind == "rest" and not torch.compiler.is_compiling()
            start = (self._rest_start if cacheable else self.initial_state)(None if unbatched else batch)
        else:
            start = coerce_state(state, owner, shape, expected, x.device)
        if unbatched:
            dim = 0 if rows is None else 1
            start = SRCState(*(s.unsqueeze(dim) for s in start))
        return start

    def _finish(self, output, final: SRCState):
        if self.return_state and not self._sequential_checked and not torch.compiler.is_compiling():
            self._sequential_checked = True
            if _called_mid_sequential(self):
                raise TypeError(
                    f"{type(self).__name__} returns (output, state), as torch.nn.GRU does, so the next module "
                    f"of this torch.nn.Sequential would get that tuple; build it with "
                    f"{type(self).__name__}(..., return_state=False) to pass on the output alone"
                )
        if self.stateful:
            self.state = final
        return (output, final) if self.return_state else output

    # ---- input ----------------------------------------------------------------------------

    def _prepare_input(self, input, batched_dim: int) -> torch.Tensor:
        """The input checked, with bool/uint8 spikes cast to the parameters' dtype."""
        name = type(self).__name__
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"{name}: input must be a torch.Tensor or a PackedSequence, got {type(input).__name__}")
        weight = self._first_weight()
        if input.dtype in SPIKE_DTYPES:
            input = input.to(weight.dtype)
        if not input.dtype.is_floating_point:
            raise TypeError(
                f"{name}: input must be a floating point tensor, or bool/uint8 spikes, got dtype {input.dtype}"
            )
        if input.dim() not in (batched_dim, batched_dim - 1):
            raise ValueError(
                f"{name}: expected input with {batched_dim} dimensions (batched) or "
                f"{batched_dim - 1} (unbatched), got {input.dim()} with shape {tuple(input.shape)}"
            )
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: expected input_size {self.input_size} in the last "
                f"dimension, got {input.shape[-1]} (shape {tuple(input.shape)})"
            )
        if input.device != weight.device:
            raise ValueError(f"{name}: input is on {input.device} but the parameters are on {weight.device}")
        if input.dtype != weight.dtype and not autocast_enabled(input.device.type):
            raise TypeError(f"{name}: input dtype {input.dtype} does not match the parameters' dtype {weight.dtype}")
        return input

    # The projection of SRCCell (one step per call) is always the dense GEMM.
    input_projection = "dense"

    def _run_unit(self, suffix: str, x, weight, bias, state, lengths, fused, data_init: bool = False):
        if data_init:
            self._data_init_unit(suffix, x, weight, bias, state, lengths, fused)
        spikes, final = self._unit_outputs(suffix, x, weight, bias, state, lengths, fused)
        if self._spike_recorder is not None:
            self._spike_recorder(self, suffix, spikes, lengths)
        watch = self.training and torch.is_grad_enabled() and spikes.device.type != "meta"
        if watch and not torch.compiler.is_compiling():
            if self._silence_watch is None:
                self._silence_watch = SilenceWatch(every_step=self._state_rows() is None)
            self._silence_watch.observe(self, suffix, spikes, lengths)
        return spikes, final

    def _emits_voltage(self, suffix: str) -> bool:
        """Whether this unit emits its voltage: output="voltage" and it is in the last layer."""
        return self.output == "voltage" and suffix.split("_")[0] in ("", f"l{getattr(self, 'num_layers', 1) - 1}")

    def _unit_outputs(self, suffix: str, x, weight, bias, state, lengths, fused):
        # The reference backend stays pure PyTorch unless the event path is asked for.
        mode = self.input_projection if fused or self.input_projection == "sparse" else "dense"
        return src_layer(
            x,
            weight,
            bias,
            state,
            self.constants,
            self.detach_recurrent,
            self.straight_through,
            fused,
            lengths,
            self.bias_straight_through,
            self._unit_constants(suffix),
            mode,
            self._emits_voltage(suffix),
        )

    # ---- repr -----------------------------------------------------------------------------

    def _config(self) -> List[Tuple[str, object]]:
        return (
            [
                ("backend", self.backend),
                ("detach_recurrent", self.detach_recurrent),
                ("straight_through", self.straight_through),
                ("bias_straight_through", self.bias_straight_through),
                ("initial_state", self.initial_state_kind),
                ("stateful", self.stateful),
                ("return_state", self.return_state),
            ]
            + list(self.constants.as_dict().items())
            + [("bias_init", self.bias_init), ("weight_scale", self.weight_scale), ("init_rate", self.init_rate)]
            + ([("output", self.output)] if self.output != "spikes" else [])
            + ([("learn", self.learn), ("per_neuron", self.per_neuron)] if self.learn else [])
        )

    def extra_repr(self) -> str:
        return ", ".join([f"{self.input_size}, {self.hidden_size}"] + [f"{n}={v!r}" for n, v in self._config()])


# What _SRCBase.__init__ takes from the constructors of SRC and SRCCell: its own parameters
# (their names as in the constructors), but ``constants``, which it takes as one dict.
_BASE_PARAMETERS = tuple(
    name for name in inspect.signature(_SRCBase.__init__).parameters if name not in ("self", "constants")
)
# The constructors' keyword arguments that make the SRCConstants: its fields.
_CONSTANT_ARGUMENTS = tuple(field.name for field in dataclasses.fields(SRCConstants))


def _base_arguments(arguments: dict) -> dict:
    """The keyword arguments of ``_SRCBase.__init__`` from ``arguments``, the ``locals()`` of
    SRC's or SRCCell's constructor on entry (its arguments by name): the public signatures
    keep every setting and constant explicit, and their shared part is passed on here once."""
    base = {name: arguments[name] for name in _BASE_PARAMETERS}
    base["constants"] = {name: arguments[name] for name in _CONSTANT_ARGUMENTS}
    return base


class SRC(_SRCBase):
    r"""A stack of Spiking Recurrent Cell layers, used like :class:`torch.nn.GRU`.

    Positional arguments as torch.nn.GRU: ``input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False``; the rest keyword-only.

    Args:
        input_size: features of the input (the spikes of the previous layer).
        hidden_size: neurons per layer (and per direction).
        num_layers: stacked layers; layer l+1 receives the spikes of layer l.
        bias: False keeps each b fixed at ``bias_init`` (a buffer, not a parameter).
        batch_first: input and output are (B, T, F) instead of (T, B, F). The state is
            (num_layers * num_directions, B, H) either way, as in torch.nn.GRU.
        dropout: dropout on the spikes between layers (not after the last), in training only,
            with a fresh mask at every step as in torch.nn.GRU. Over a rate code such masks
            average out; :class:`srcext.models.SRCClassifier` drops a neuron for a whole
            sample instead.
        bidirectional: a second stack runs on each sample's sequence reversed (within its
            length); the outputs of both directions are concatenated on the feature axis, and
            layer l+1 takes 2 * hidden_size inputs.
        proj_size: only 0 (torch.nn.LSTM's projection has no meaning for SRC).
        backend: ``"fused"`` (compiled kernels), ``"reference"`` (pure PyTorch) or
            ``"auto"`` (fused where available for the input's device).
        detach_recurrent: the paper's training setting: no gradient through time via h, hs.
        straight_through: relu forward, identity backward (the paper's surrogate).
        bias_straight_through: the bias is never frozen above bias_max (see
            :mod:`srcext.bias`); False gives the spec's clamp (zero gradient above bias_max).
        initial_state: ``"rest"`` (the default start is the rest state, see
            :meth:`initial_state`) or ``"zeros"`` (the spec's zero state, as in the paper).
        stateful: carry the final state over to the next call (streaming; see
            :meth:`reset_state`, :meth:`detach_state`).
        return_state: False returns only the output, for use inside torch.nn.Sequential.
        alpha, rho, r, r_s, z, z_hyp, z_dep, gate_slope, gate_threshold, bias_max: the cell
            constants of the spec (paper defaults).
        learn: names of cell constants to learn (any of ``srcext.constants.CELL_CONSTANTS``;
            not bias_max), initialised at the values above. Each is a parameter
            ``{name}_raw_l{k}`` holding it unconstrained: alpha, z, z_hyp and z_dep pass
            through a sigmoid (a value of exactly 0 or 1 starts 1e-4 inside), rho through a
            softplus, the others are used as they are. :meth:`cell_constants` gives the
            values.
        per_neuron: the learned constants are per neuron ((hidden_size,) each) instead of
            one per layer.
        bias_init: initial value of every bias (-6).
        weight_scale: multiplies the initial weights (default 1). Giving it chooses the
            scale: the data-dependent init is then off unless init_rate is given too.
        init_rate: the data-dependent initialisation ("auto": 0.05 unless weight_scale is
            given, then None): on the first call in
            training mode with gradients on, each layer's input weights are scaled, layer by
            layer, so that it fires at this fraction of its neuron-steps on that batch (any
            input scale: spikes at 1 %, embeddings, dense features). Done once: the buffer
            ``data_init_done`` records it, so a loaded checkpoint is not initialised again;
            under DistributedDataParallel the ranks agree (their counts are summed).
            ``reset_parameters()`` arms it again. None: no data init (the weights stay as
            initialised; :func:`srcext.calibrate_` does the same on request). During training
            a layer that stays silent (or saturates) gets one warning.
        output: what the last layer emits per step: ``"spikes"`` (relu(h), the default) or
            ``"voltage"``, its membrane voltage h (the readout for per-step tasks, see
            docs/guide.md; its gradient is the straight-through one). Layers below the last
            always pass their spikes on.
        input_projection: ``"auto"`` (the default: the input projection of each layer is
            computed from the non-zero inputs only when few are, see :mod:`srcext.events`),
            ``"dense"`` (always one GEMM) or ``"sparse"`` (always from the events).

    The input may also be events: a torch sparse tensor (T, B, input_size) (or (B, T,
    input_size) with batch_first, or (T, input_size) unbatched) in any sparse layout, its
    feature dimensions flattened if there are several (e.g. tonic's ``ToSparseTensor`` frames
    stacked to (B, T, C, H, W)), or :class:`srcext.events.Events` (e.g. from
    :meth:`srcext.data.RateEncoder.events`). "auto" projects it from its list where that was
    measured faster (on a CPU always; on a GPU in float32 below 2 % density) and makes it dense
    for the GEMM otherwise; "sparse" always uses the list, "dense" always the GEMM.

    Parameters ``weight_l{k}`` (hidden_size, in) are initialised as torch.nn.Linear does,
    U(-1/sqrt(in), 1/sqrt(in)), times ``weight_scale``; ``bias_l{k}`` (hidden_size,) at
    ``bias_init``; the reverse direction's are ``weight_l{k}_reverse``, ``bias_l{k}_reverse``.

    ``forward(input, state=None, lengths=None) -> (output, SRCState(i, h, hs))`` (``hx=`` is
    accepted for ``state``, as torch.nn.GRU names it): input
    (T, B, input_size) (or (B, T, input_size) with batch_first, or (T, input_size)
    unbatched, or a PackedSequence); output the spikes of the last layer (T, B,
    num_directions * hidden_size), or a PackedSequence for a PackedSequence; each state field
    (num_layers * num_directions, B, hidden_size). ``state``: an SRCState or (i, h, hs), a
    single h tensor (i = 0, hs = h), or None for :meth:`initial_state`. ``lengths`` (B,):
    sample b runs its first lengths[b] steps only; its output is 0 after them and its final
    state is the one after its own last step.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        proj_size: int = 0,
        backend: str = "auto",
        detach_recurrent: bool = True,
        straight_through: bool = True,
        bias_straight_through: bool = True,
        initial_state: str = "rest",
        stateful: bool = False,
        return_state: bool = True,
        alpha: float = DEFAULTS.alpha,
        rho: float = DEFAULTS.rho,
        r: float = DEFAULTS.r,
        r_s: float = DEFAULTS.r_s,
        z: float = DEFAULTS.z,
        z_hyp: float = DEFAULTS.z_hyp,
        z_dep: float = DEFAULTS.z_dep,
        gate_slope: float = DEFAULTS.gate_slope,
        gate_threshold: float = DEFAULTS.gate_threshold,
        bias_max: float = DEFAULTS.bias_max,
        bias_init: float = BIAS_INIT,
        weight_scale: Optional[float] = None,
        init_rate: Union[float, str, None] = "auto",
        output: str = "spikes",
        learn=(),
        per_neuron: bool = False,
        input_projection: str = "auto",
        device=None,
        dtype=None,
    ):
        super().__init__(**_base_arguments(locals()))
        self.input_projection = validate_projection(input_projection)
        self.num_layers = _positive_int("SRC", "num_layers", num_layers)
        self.bias = bias
        self.batch_first = bool(batch_first)
        if not isinstance(dropout, numbers.Real) or isinstance(dropout, bool) or not 0.0 <= dropout <= 1.0:
            raise ValueError(
                f"SRC: dropout must be a number in [0, 1] (the probability of "
                f"zeroing a spike between layers), got {dropout!r}"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"SRC: dropout acts between layers (not after the last), so "
                f"dropout={dropout} does nothing with num_layers=1",
                stacklevel=2,
            )
        self.dropout = float(dropout)
        if not isinstance(bidirectional, bool):
            raise TypeError(f"SRC: bidirectional must be True or False, got {bidirectional!r}")
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        if proj_size != 0:
            raise ValueError(
                f"SRC: proj_size={proj_size!r} is not supported: the projection "
                "of torch.nn.LSTM has no counterpart in SRC (its output is its "
                "spikes); use a torch.nn.Linear on the output instead"
            )
        factory = {"device": device, "dtype": dtype}
        for layer in range(self.num_layers):
            fan_in = input_size if layer == 0 else hidden_size * self.num_directions
            for direction in range(self.num_directions):
                suffix = self._suffix(layer, direction)
                self._register_unit(f"weight_{suffix}", f"bias_{suffix}", fan_in, factory)
        self.reset_parameters()

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"l{layer}" + ("_reverse" if direction else "")

    def reset_parameters(self) -> None:
        for _, weight, bias in self._units():
            self._init_unit(weight, bias)
        self._reset_learned_constants()
        self._data_init_rearm()

    def layer_weight(self, layer: int, reverse: bool = False) -> nn.Parameter:
        return getattr(self, f"weight_{self._suffix(layer, int(reverse))}")

    def layer_bias(self, layer: int, reverse: bool = False) -> torch.Tensor:
        return getattr(self, f"bias_{self._suffix(layer, int(reverse))}")

    def _units(self):
        return [
            (self._suffix(layer, d), self.layer_weight(layer, bool(d)), self.layer_bias(layer, bool(d)))
            for layer in range(self.num_layers)
            for d in range(self.num_directions)
        ]

    def _first_weight(self) -> nn.Parameter:
        return self.weight_l0  # (asked on every call: not through _units)

    def _state_rows(self) -> int:
        return self.num_layers * self.num_directions

    def forward(self, input: Union[torch.Tensor, PackedSequence], state=None, lengths=None, hx=None):
        state = _state_or_hx(state, hx, "SRC")
        events = None
        if is_event_input(input):
            events, input = self._event_input(input)
        packed = input if isinstance(input, PackedSequence) else None
        if packed is not None:
            if lengths is not None:
                raise ValueError("SRC: lengths must be None for a PackedSequence input (it carries its own lengths)")
            padded, lengths = unpack(packed)
            x = self._prepare_input(padded, 3)
            unbatched = False
        else:
            x = self._prepare_input(input, 3)
            unbatched = x.dim() == 2
            if unbatched:
                if lengths is not None:
                    raise ValueError(
                        "SRC: lengths needs batched input (T, B, F); for one sequence, slice it to its length instead"
                    )
                x = x.unsqueeze(1)
            elif self.batch_first:
                x = x.transpose(0, 1)
        steps, batch = x.shape[0], x.shape[1]
        lengths = check_lengths(lengths, batch, steps, x.device, "SRC")
        if events is None:  # (deeper layers get spikes, which are 0 past the lengths already)
            x = zero_padding(x, lengths)
        fused = use_fused(self.backend, x.device)
        start = self._start_state(state, batch, unbatched, x, fused)
        data_init = self._data_init_now(x.device)
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                row = layer * self.num_directions + direction
                xin = reverse_within_lengths(x, lengths) if direction else x
                if events is not None and layer == 0:
                    xin = reverse_within_lengths(events.to_dense(), lengths) if direction else events
                spikes, final = self._run_unit(
                    self._suffix(layer, direction),
                    xin,
                    self.layer_weight(layer, bool(direction)),
                    self.layer_bias(layer, bool(direction)),
                    (start.i[row], start.h[row], start.hs[row]),
                    lengths,
                    fused,
                    data_init,
                )
                outputs.append(reverse_within_lengths(spikes, lengths) if direction else spikes)
                finals.append(final)
            x = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, training=True)
        if data_init:
            self._data_init_settled()
        if len(finals) == 1:  # (a view, where stacking one tensor would copy it)
            final = SRCState(*(field.unsqueeze(0) for field in finals[0]))
        else:
            final = SRCState(*(torch.stack(field) for field in zip(*finals)))
        if unbatched:
            return self._finish(x.squeeze(1), SRCState(*(s.squeeze(1) for s in final)))
        if packed is not None:
            return self._finish(pack_like(x, lengths, packed), final)
        return self._finish(x.transpose(0, 1) if self.batch_first else x, final)

    @_outside_compile(
        "SRC: an event input (a sparse tensor or srcext.Events) is read outside the compiled graph, "
        "since torch.compile does not trace sparse tensors; with fullgraph=True give a dense input"
    )
    def _event_input(self, input):
        """The checked events of an event input, and a stand-in dense input of its shape (no
        memory: a zero expanded) for the checks and shapes of forward."""
        events = as_events(input, self.batch_first, "SRC")
        if events.features != self.input_size:
            raise ValueError(
                f"SRC: expected input_size {self.input_size} features, got {events.features} "
                f"(events of shape (T, B, F) = {tuple(events.shape)}"
                + (f", from a sparse input of shape {tuple(input.shape)}" if isinstance(input, torch.Tensor) else "")
                + ")"
            )
        if isinstance(input, torch.Tensor) and input.dim() == 2:  # unbatched (T, F): a batch of one
            shape = (events.steps,)
        elif self.batch_first:
            shape = (events.batch, events.steps)
        else:
            shape = (events.steps, events.batch)
        stand_in = events.val.new_zeros(()).expand(*shape, events.features)
        stand_in = self._prepare_input(stand_in, 3)
        return events.to(stand_in.dtype), stand_in

    def _config(self):
        return (
            [
                ("num_layers", self.num_layers),
                ("bias", self.bias),
                ("batch_first", self.batch_first),
                ("dropout", self.dropout),
                ("bidirectional", self.bidirectional),
            ]
            + super()._config()
            + [("input_projection", self.input_projection)]
        )

    def __setstate__(self, state: dict) -> None:
        state.setdefault("bias", True)
        super().__setstate__(state)


class SRCCell(_SRCBase):
    r"""One Spiking Recurrent Cell layer, one time step per call, used like
    :class:`torch.nn.GRUCell` (streaming inference, step loops).

    Positional arguments as torch.nn.GRUCell: ``input_size, hidden_size, bias=True``; the
    rest keyword-only, as :class:`SRC`'s. Parameters ``weight`` (hidden_size, input_size)
    and ``bias`` (a buffer with ``bias=False``). ``forward(input, state=None) -> (spikes,
    SRCState(i, h, hs))``: input (B, input_size) or (input_size,); every field of the state
    (B, hidden_size). Running it over T steps gives the same result as :class:`SRC`.
    With ``stateful=True, return_state=False`` it is a spiking neuron layer for a step loop
    inside torch.nn.Sequential (as snnTorch's ``init_hidden=True``).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        backend: str = "auto",
        detach_recurrent: bool = True,
        straight_through: bool = True,
        bias_straight_through: bool = True,
        initial_state: str = "rest",
        stateful: bool = False,
        return_state: bool = True,
        alpha: float = DEFAULTS.alpha,
        rho: float = DEFAULTS.rho,
        r: float = DEFAULTS.r,
        r_s: float = DEFAULTS.r_s,
        z: float = DEFAULTS.z,
        z_hyp: float = DEFAULTS.z_hyp,
        z_dep: float = DEFAULTS.z_dep,
        gate_slope: float = DEFAULTS.gate_slope,
        gate_threshold: float = DEFAULTS.gate_threshold,
        bias_max: float = DEFAULTS.bias_max,
        bias_init: float = BIAS_INIT,
        weight_scale: Optional[float] = None,
        init_rate: Union[float, str, None] = "auto",
        output: str = "spikes",
        learn=(),
        per_neuron: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__(**_base_arguments(locals()))
        self._register_unit("weight", "bias", input_size, {"device": device, "dtype": dtype})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._init_unit(self.weight, self.bias)
        self._reset_learned_constants()
        self._data_init_rearm()

    def _units(self):
        return [("", self.weight, self.bias)]

    def _first_weight(self) -> nn.Parameter:
        return self.weight

    def _state_rows(self) -> None:
        return None

    def forward(self, input: torch.Tensor, state=None, hx=None):
        state = _state_or_hx(state, hx, "SRCCell")
        lean = self._lean_step(input, self.state if state is None and self.stateful else state)
        if lean is not None:
            return self._finish(*lean)
        x = self._prepare_input(input, 2)
        unbatched = x.dim() == 1
        x = x.reshape(1, 1, -1) if unbatched else x.unsqueeze(0)
        fused = use_fused(self.backend, x.device)
        start = self._start_state(state, x.shape[1], unbatched, x, fused)
        data_init = self._data_init_now(x.device)
        spikes, final = self._run_unit("", x, self.weight, self.bias, start, None, fused, data_init)
        if data_init:
            self._data_init_settled()
        if unbatched:
            return self._finish(spikes.reshape(-1), SRCState(*(s.reshape(-1) for s in final)))
        return self._finish(spikes[0], final)

    def _lean_step(self, input, state):
        """forward's common case in few Python steps, or None where it does not apply (then the
        general path runs, with its checks and messages). A streaming loop calls a cell once
        per step, so its host cost is the step's cost: this path calls the one op
        srcext::src_layer and checks only what that case needs. The same results as the general
        path (tests/test_layer.py). The case: eager, fused, a batched input and state (a
        previous call's, or none with the rest start) in the weight's dtype, no autocast,
        fixed constants, no data init or spike recording pending."""
        # the module's own tensors by dict (nn.Module's attribute lookup costs ~1 us each);
        # absent there (e.g. a parametrization), the general path
        weight, bias = self._parameters.get("weight"), self._parameters.get("bias", self._buffers.get("bias"))
        if (
            weight is None
            or bias is None
            or type(input) is not torch.Tensor
            or input.dim() != 2
            or input.dtype != weight.dtype
            or input.shape[1] != self.input_size
            or input.device != weight.device
            or self._backend == "reference"
            or not fused_available(input.device)  # (and so not meta, whose device type has none)
            or self.learn
            or self._spike_recorder is not None
            or (self._data_init_pending and self.training and torch.is_grad_enabled())
            or not _eager()  # (and so no torch.func transform, where 'auto' takes the reference)
            or torch.is_autocast_enabled(input.device.type)
        ):
            return None
        batch = input.shape[0]
        if state is None:
            if self.initial_state_kind != "rest":
                return None
            state = self._rest_start(batch)
        elif not state_fits(state, (batch, self.hidden_size), weight.dtype, weight.device):
            return None
        constants = self._constants
        spikes, i, h, hs = torch.ops.srcext.src_layer.default(
            input,  # (B, F): one step, spikes (B, H)
            weight,
            bias,
            *state,
            None,
            constants.bias_max,
            self.bias_straight_through,
            self.detach_recurrent,
            self.straight_through,
            None,
            _layer_values(constants),
            self.output == "voltage",
        )
        if self.training and torch.is_grad_enabled():
            if self._silence_watch is None:
                self._silence_watch = SilenceWatch(every_step=True)
            self._silence_watch.observe(self, "", spikes, None)  # (counts: any shape without lengths)
        return spikes, SRCState(i, h, hs)

    def _config(self):
        return [("bias", self._bias_trainable)] + super()._config()
