"""``SRCCell``: one SRC layer, one time step per call, used like torch.nn.GRUCell."""

from __future__ import annotations

import torch
from torch import nn

from ._extension import fused_available
from .functional import _eager, use_fused
from .layer_base import _SRCBase, _state_or_hx, with_shared_keywords
from .ops.recurrence import _layer_values
from .silence import SilenceWatch
from .state import SRCState, state_fits


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

    @with_shared_keywords
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, device=None, dtype=None, **shared):
        super().__init__(input_size, hidden_size, bias, shared, device)
        self._register_unit("", input_size, {"device": device, "dtype": dtype})
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
        return [("bias", self.trainable_bias)] + super()._config()
