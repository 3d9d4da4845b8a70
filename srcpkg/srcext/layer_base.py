"""What SRC and SRCCell share: their constructor's keyword settings, written once
(:class:`LayerOptions` and the cell constants of :class:`srcext.SRCConstants`), and the module
base class ``_SRCBase`` (parameters, learnable constants, the data-dependent init, the start
state, the stored state of the stateful form, input checks).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import numbers
import sys
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from .bias import cell_bias
from .constants import (
    BIAS_INIT,
    CELL_CONSTANTS,
    SRCConstants,
    check_learn,
    constrained,
    raw_value,
    validate_constants,
)
from .functional import src_layer, validate_backend
from .projection import autocast_enabled
from .rate_targeting import solve_log_scale, spike_counts
from .silence import SilenceWatch
from .state import INITIAL_STATES, SRCState, coerce_state, rest_state, rest_voltage, zero_state

# Each layer's rest voltages and the key they were solved for (see _cached_rest_voltage);
# weak, so the cache neither keeps a layer alive nor travels with it (pickle, deepcopy).
_REST_VOLTAGES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Per layer, the last rest start state a fused call ran from, made from its rest voltage
# (_rest_start): (voltage, batch, dtype, state). A step-by-step loop starts every call from it.
_REST_STARTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Elements up to which a cached rest start is held contiguous (_rest_start): 256 KiB of float32
# per state tensor.
_MATERIALISED_REST_START = 1 << 16

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


@dataclasses.dataclass(frozen=True)
class LayerOptions:
    """The keyword-only settings SRC and SRCCell share, with their defaults, written once:
    both constructors take them (and the cell constants, the fields of
    :class:`srcext.SRCConstants`) as keywords, and :func:`with_shared_keywords` lists them in
    their signatures. What each one means: SRC's docstring."""

    backend: str = "auto"
    detach_recurrent: bool = True
    straight_through: bool = True
    bias_straight_through: bool = True
    initial_state: str = "rest"
    stateful: bool = False
    return_state: bool = True
    bias_init: float = BIAS_INIT
    weight_scale: Optional[float] = None
    init_rate: Union[float, str, None] = "auto"
    output: str = "spikes"
    learn: Any = ()
    per_neuron: bool = False


_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(LayerOptions))
_CONSTANT_NAMES = tuple(f.name for f in dataclasses.fields(SRCConstants))


def split_keywords(
    keywords: Dict[str, Any], owner: str, known: Tuple[str, ...] = ()
) -> Tuple[LayerOptions, SRCConstants]:
    """The shared keywords of a constructor call as its options and its constants; an unknown
    keyword is a TypeError that names the closest known one, among the shared ones and
    ``known`` (the constructor's own: ``dropuot`` is 'dropout', not 'output')."""
    for name in keywords:
        if name not in _OPTION_NAMES and name not in _CONSTANT_NAMES:
            names = list(dict.fromkeys(tuple(known) + _OPTION_NAMES + _CONSTANT_NAMES))
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}{hint}")
    options = LayerOptions(**{n: keywords[n] for n in _OPTION_NAMES if n in keywords})
    constants = SRCConstants(**{n: keywords[n] for n in _CONSTANT_NAMES if n in keywords})
    return options, constants


def with_shared_keywords(init: Callable) -> Callable:
    """A constructor that takes the shared settings as ``**keywords``, with a signature that
    lists them (help(), inspect and IDEs show every one with its default): keyword-only,
    after the constructor's own and before ``device`` and ``dtype``."""
    signature = inspect.signature(init)
    own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    tail = [p for p in own if p.name in ("device", "dtype")]
    head = [p for p in own if p.name not in ("device", "dtype")]
    shared = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
        for spec in (LayerOptions, SRCConstants)
        for f in dataclasses.fields(spec)
    ]
    init.__signature__ = signature.replace(parameters=head + shared + tail)
    return init


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
        trainable_bias=True,
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

    def __init__(self, input_size, hidden_size, bias, keywords: Dict[str, Any], device=None):
        """``bias``: whether the bias trains; ``keywords``: the shared settings and constants
        as the constructor got them (:func:`split_keywords`)."""
        super().__init__()
        name = type(self).__name__
        options, constants = split_keywords(keywords, name, tuple(inspect.signature(type(self)).parameters))
        backend, learn, per_neuron = options.backend, options.learn, options.per_neuron
        bias_init, weight_scale, init_rate = options.bias_init, options.weight_scale, options.init_rate
        output, initial_state = options.output, options.initial_state
        self.input_size = _positive_int(name, "input_size", input_size)
        self.hidden_size = _positive_int(name, "hidden_size", hidden_size)
        self.backend = backend
        self.detach_recurrent = bool(options.detach_recurrent)
        self.straight_through = bool(options.straight_through)
        self.bias_straight_through = bool(options.bias_straight_through)
        self.constants = constants  # validated by the property's setter
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
        # with the weights and a loaded checkpoint is never initialised again; its host copy
        # _data_init_pending, so that no call reads the device. Both set by reset_parameters,
        # which every constructor ends with (_data_init_rearm).
        self.register_buffer("data_init_done", torch.tensor(True, device=device))
        self._data_init_pending = False
        self._silence_watch: Optional[SilenceWatch] = None
        self._sequential_checked = False  # the nn.Sequential check of _finish, done once
        if not isinstance(bias, bool):
            raise TypeError(f"{name}: bias must be True or False, got {bias!r}")
        self.trainable_bias = bias
        if initial_state not in INITIAL_STATES:
            raise ValueError(f"{name}: initial_state must be one of {INITIAL_STATES}, got {initial_state!r}")
        self.initial_state_kind = initial_state
        self.stateful = bool(options.stateful)
        self.return_state = bool(options.return_state)
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
        if "_bias_trainable" in state:  # its name before it was public
            state["trainable_bias"] = state.pop("_bias_trainable")
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

    @staticmethod
    def _unit_name(name: str, suffix: str) -> str:
        """The name of a unit's tensor: ``weight`` / ``bias`` / ``{constant}_raw``, then
        ``_{suffix}`` for the units of SRC (``l0``, ``l1_reverse``, ...); SRCCell's one unit
        has the suffix ""."""
        return f"{name}_{suffix}" if suffix else name

    def _register_unit(self, suffix: str, fan_in: int, factory) -> None:
        weight = nn.Parameter(torch.empty(self.hidden_size, fan_in, **factory))
        self.register_parameter(self._unit_name("weight", suffix), weight)
        bias = torch.empty(self.hidden_size, **factory)
        if self.trainable_bias:
            self.register_parameter(self._unit_name("bias", suffix), nn.Parameter(bias))
        else:  # bias=False: b stays at bias_init; a buffer, so it moves with .to() and saves
            self.register_buffer(self._unit_name("bias", suffix), bias)
        # The learnable constants of this unit, stored unconstrained (see srcext.constants).
        shape = (self.hidden_size,) if self.per_neuron else ()
        for name in self.learn:
            self.register_parameter(self._raw_name(name, suffix), nn.Parameter(torch.empty(shape, **factory)))

    def _reset_learned_constants(self) -> None:
        """Every learnable constant back at its initial value (the constructor's)."""
        with torch.no_grad():
            for suffix, _, _ in self._units():
                for name in self.learn:
                    getattr(self, self._raw_name(name, suffix)).fill_(raw_value(name, getattr(self.constants, name)))

    @classmethod
    def _raw_name(cls, name: str, suffix: str) -> str:
        return cls._unit_name(f"{name}_raw", suffix)

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
        """initial_state(batch) for a fused call's own use, made once per voltage, batch and
        dtype from the cached rest voltage. Small ones are materialised (contiguous): the op
        would otherwise copy the three expanded states on every call, a fifth of a small
        layer's call (~20 of ~140 us at B=8, H=64 on the CPU); large ones stay expansions,
        no memory held, where the copies are a sliver of the call. Safe either way as the
        fused ops never write their inputs and return new tensors even at T = 0."""
        voltage = self._rest_voltage()
        dtype = self._first_weight().dtype
        cached = _REST_STARTS.get(self)
        if cached is not None and cached[0] is voltage and cached[1] == batch and cached[2] == dtype:
            return cached[3]
        h = voltage.to(dtype) if self._state_rows() is not None else voltage[0].to(dtype)
        if batch is not None:
            h = h.unsqueeze(-2).expand(*h.shape[:-1], batch, h.shape[-1])
        zeros = h.new_zeros(()).expand(h.shape)
        if h.numel() <= _MATERIALISED_REST_START:
            h, zeros = h.contiguous(), zeros.contiguous()
        start = SRCState(zeros, h, h)
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
