"""The SRC layers: ``SRC`` (a stack of layers over a sequence, used like torch.nn.GRU) here,
``SRCCell`` (one step at a time, used like torch.nn.GRUCell) in ``cell.py``.

What they share (the constructor's settings, parameters, the start state, the stored state of
the stateful form, input checks) is in ``layer_base.py``; one layer as a function
(``src_layer``) in ``functional.py``; the state itself in ``state.py``, the variable-length
helpers in ``sequences.py``, the bias's gradient in ``bias.py``.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Union

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from .cell import SRCCell
from .events import as_events, is_event_input
from .functional import BACKENDS, src_layer, use_fused, validate_backend
from .layer_base import (  # (the DATA_INIT_* settings: re-exported, they were defined here)
    DATA_INIT_MAX_EVALUATIONS,
    DATA_INIT_MAX_SCALE,
    DATA_INIT_TOLERANCE,
    DEFAULT_INIT_RATE,
    OUTPUTS,
    SPIKE_DTYPES,
    _outside_compile,
    _positive_int,
    _SRCBase,
    _state_or_hx,
    with_shared_keywords,
)
from .projection import validate_projection
from .sequences import layer_lengths, pack_like, reverse_within_lengths, unpack, zero_padding
from .state import SRCState

__all__ = [
    "SRC",
    "SRCCell",
    "src_layer",
    "use_fused",
    "validate_backend",
    "BACKENDS",
    "DEFAULT_INIT_RATE",
    "DATA_INIT_TOLERANCE",
    "DATA_INIT_MAX_EVALUATIONS",
    "DATA_INIT_MAX_SCALE",
    "OUTPUTS",
    "SPIKE_DTYPES",
]


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
        the cell constants: every field of :class:`srcext.SRCConstants` by name (the
            spec's constants and bias_max, with the paper's defaults), e.g. ``SRC(..., z=0.2)``.
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

    @with_shared_keywords
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
        input_projection: str = "auto",
        device=None,
        dtype=None,
        **shared,
    ):
        super().__init__(input_size, hidden_size, bias, shared, device)
        self.input_projection = validate_projection(input_projection)
        self.num_layers = _positive_int("SRC", "num_layers", num_layers)
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
                self._register_unit(self._suffix(layer, direction), fan_in, factory)
        self.reset_parameters()

    @property
    def bias(self) -> bool:
        """Whether the biases train: torch.nn.GRU's name for ``trainable_bias``."""
        return self.trainable_bias

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
        lengths = layer_lengths(lengths, batch, steps, x.device, "SRC")
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
        # pickled with the setting stored as ``bias`` too (now a property over trainable_bias);
        # one pickled before either takes _PICKLE_DEFAULTS' value
        bias = state.pop("bias", None)
        if bias is not None and "_bias_trainable" not in state:
            state.setdefault("trainable_bias", bias)
        super().__setstate__(state)
