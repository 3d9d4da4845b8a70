"""The SRC layers: ``SRC`` (a stack of layers over a sequence, like torch.nn.GRU) and
``SRCCell`` (one step at a time, for streaming)."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from ._extension import fused_available, fused_unavailable_reason
from .ops import src_recurrence_fused
from .reference import BIAS_INIT, SRCConstants, effective_bias, src_recurrence_reference

State = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]
BACKENDS = ("auto", "fused", "reference")


def validate_constants(k: SRCConstants) -> None:
    """Reject constants that break the model, at construction time."""
    for name, value in k.as_dict().items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"SRC: {name} must be a real number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"SRC: {name} must be finite, got {value}")
    if k.rho <= 0:
        raise ValueError(f"SRC: rho must be > 0 (it bounds the input), got {k.rho}")
    if not 0.0 <= k.alpha <= 1.0:
        raise ValueError(f"SRC: alpha must be in [0, 1] (integrator decay), got {k.alpha}")
    if not 0.0 <= k.z < 1.0:
        raise ValueError(f"SRC: z must be in [0, 1) (update gate of h), got {k.z}")
    for name in ("z_hyp", "z_dep"):
        if not 0.0 <= getattr(k, name) <= 1.0:
            raise ValueError(f"SRC: {name} must be in [0, 1] (a gate), got {getattr(k, name)}")


def validate_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"SRC: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def use_fused(backend: str, device: torch.device) -> bool:
    if backend == "reference":
        return False
    if backend == "fused":
        if not fused_available(device):
            raise RuntimeError(
                f"SRC: backend='fused' is not available for {device}: "
                f"{fused_unavailable_reason(device)}")
        return True
    return fused_available(device)


def src_layer(
    x: torch.Tensor,
    weight: torch.Tensor,
    b: torch.Tensor,
    state: State,
    k: SRCConstants,
    detach_recurrent: bool,
    straight_through: bool,
    fused: bool,
) -> Tuple[torch.Tensor, State]:
    """One layer on time-major input (T, B, in): the GEMM in ATen, then the time loop."""
    u = nn.functional.linear(x, weight)  # (T, B, H), one GEMM for all steps
    bias = effective_bias(b, k.bias_max).to(u.dtype)
    state = tuple(s.to(u.dtype) for s in state)  # autocast may have lowered u's dtype
    run = src_recurrence_fused if fused else src_recurrence_reference
    return run(u, bias, state, k, detach_recurrent, straight_through)


class _SRCBase(nn.Module):
    def __init__(self, input_size, hidden_size, backend, detach_recurrent, straight_through,
                 constants, bias_init, weight_scale):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.backend = backend
        self.detach_recurrent = bool(detach_recurrent)
        self.straight_through = bool(straight_through)
        self.constants = SRCConstants(**constants)
        validate_constants(self.constants)
        self.bias_init = float(bias_init)
        if not (isinstance(weight_scale, (int, float)) and math.isfinite(weight_scale) and weight_scale > 0):
            raise ValueError(f"{type(self).__name__}: weight_scale must be a positive number, got {weight_scale!r}")
        self.weight_scale = float(weight_scale)

    @property
    def backend(self) -> str:
        """"fused", "reference" or "auto"; may be changed after construction."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = validate_backend(value)

    def _init_layer(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        # Weights as torch.nn.Linear, U(-1/sqrt(in), 1/sqrt(in)), times weight_scale; biases at
        # the spec's -6.
        bound = self.weight_scale / math.sqrt(weight.shape[1])
        with torch.no_grad():
            weight.uniform_(-bound, bound)
            bias.fill_(self.bias_init)

    def _check_input(self, input: torch.Tensor, batched_dim: int) -> None:
        name = type(self).__name__
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"{name}: input must be a torch.Tensor, got {type(input).__name__}")
        if not input.dtype.is_floating_point:
            raise TypeError(f"{name}: input must be a floating point tensor (spikes as 0./1.), "
                            f"got dtype {input.dtype}")
        if input.dim() not in (batched_dim, batched_dim - 1):
            raise ValueError(
                f"{name}: expected input with {batched_dim} dimensions (batched) or "
                f"{batched_dim - 1} (unbatched), got {input.dim()} with shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input_size {self.input_size} in the last "
                             f"dimension, got {input.shape[-1]} (shape {tuple(input.shape)})")
        param = next(self.parameters())
        if input.device != param.device:
            raise ValueError(f"{name}: input is on {input.device} but the parameters are on "
                             f"{param.device}")
        if input.dtype != param.dtype and not torch.is_autocast_enabled(input.device.type):
            raise TypeError(f"{name}: input dtype {input.dtype} does not match the parameters' "
                            f"dtype {param.dtype}")

    def _check_state(self, state, input: torch.Tensor, shape: Tuple[int, ...]) -> State:
        name = type(self).__name__
        if not isinstance(state, (tuple, list)) or len(state) != 3:
            raise TypeError(f"{name}: state must be a tuple (i, h, hs) of 3 tensors, got "
                            f"{type(state).__name__}"
                            + (f" of length {len(state)}" if isinstance(state, (tuple, list)) else ""))
        for label, s in zip(("i", "h", "hs"), state):
            if not isinstance(s, torch.Tensor):
                raise TypeError(f"{name}: state {label} must be a tensor, got {type(s).__name__}")
            if tuple(s.shape) != shape:
                raise ValueError(f"{name}: state {label} must have shape {shape}, got {tuple(s.shape)}")
            if not s.dtype.is_floating_point:
                raise TypeError(f"{name}: state {label} must be floating point, got {s.dtype}")
            if s.dtype != input.dtype and not torch.is_autocast_enabled(input.device.type):
                raise TypeError(f"{name}: state {label} has dtype {s.dtype} but input has {input.dtype}")
            if s.device != input.device:
                raise ValueError(f"{name}: state {label} is on {s.device} but input is on {input.device}")
        return tuple(state)

    def extra_repr(self) -> str:
        changed = {n: v for n, v in self.constants.as_dict().items()
                   if v != getattr(SRCConstants(), n)}
        parts = [f"{self.input_size}, {self.hidden_size}"]
        parts += [f"backend={self.backend!r}"]
        if not self.detach_recurrent:
            parts.append("detach_recurrent=False")
        if not self.straight_through:
            parts.append("straight_through=False")
        parts += [f"{n}={v}" for n, v in changed.items()]
        return ", ".join(parts)


class SRC(_SRCBase):
    r"""A stack of Spiking Recurrent Cell layers, used like :class:`torch.nn.GRU`.

    Args:
        input_size: features of the input (the spikes of the previous layer).
        hidden_size: neurons per layer.
        num_layers: stacked layers; layer l+1 receives the spikes of layer l.
        batch_first: input and output are (B, T, F) instead of (T, B, F).
        backend: ``"fused"`` (compiled kernels), ``"reference"`` (pure PyTorch) or
            ``"auto"`` (fused where available for the input's device).
        detach_recurrent: the paper's training setting: no gradient through time via h, hs.
        straight_through: relu forward, identity backward (the paper's surrogate).
        alpha, rho, r, r_s, z, z_hyp, z_dep, gate_slope, gate_threshold, bias_max: the cell
            constants of the spec (paper defaults).
        bias_init: initial value of every bias (-6).
        weight_scale: multiplies the initial weights (see below).

    Parameters ``weight_l{k}`` (hidden_size, in) are initialised as torch.nn.Linear does,
    U(-1/sqrt(in), 1/sqrt(in)), times ``weight_scale``; ``bias_l{k}`` (hidden_size,) at
    ``bias_init``. Sparse spike input needs weight_scale > 1 for the layer to fire at first
    (srcext.models uses 4: a few percent of steps on rate-coded MNIST).

    ``forward(input, state=None) -> (output, (i_n, h_n, hs_n))``: input (T, B, input_size)
    (or (B, T, input_size) with batch_first, or (T, input_size) unbatched); output the spikes
    of the last layer, (T, B, hidden_size); each state tensor (num_layers, B, hidden_size)
    ((num_layers, hidden_size) unbatched). The state defaults to zeros.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 batch_first: bool = False, backend: str = "auto",
                 detach_recurrent: bool = True, straight_through: bool = True,
                 alpha: float = 0.9, rho: float = 3.0, r: float = 2.0, r_s: float = -7.0,
                 z: float = 0.0, z_hyp: float = 0.9, z_dep: float = 0.0,
                 gate_slope: float = 10.0, gate_threshold: float = 0.5, bias_max: float = -4.0,
                 bias_init: float = BIAS_INIT, weight_scale: float = 1.0, device=None, dtype=None):
        constants = dict(alpha=alpha, rho=rho, r=r, r_s=r_s, z=z, z_hyp=z_hyp, z_dep=z_dep,
                         gate_slope=gate_slope, gate_threshold=gate_threshold, bias_max=bias_max)
        super().__init__(input_size, hidden_size, backend, detach_recurrent, straight_through,
                         constants, bias_init, weight_scale)
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers <= 0:
            raise ValueError(f"SRC: num_layers must be a positive int, got {num_layers!r}")
        self.num_layers = num_layers
        self.batch_first = bool(batch_first)
        factory = {"device": device, "dtype": dtype}
        for layer in range(num_layers):
            fan_in = input_size if layer == 0 else hidden_size
            self.register_parameter(
                f"weight_l{layer}", nn.Parameter(torch.empty(hidden_size, fan_in, **factory)))
            self.register_parameter(
                f"bias_l{layer}", nn.Parameter(torch.empty(hidden_size, **factory)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in range(self.num_layers):
            self._init_layer(self.layer_weight(layer), self.layer_bias(layer))

    def layer_weight(self, layer: int) -> nn.Parameter:
        return getattr(self, f"weight_l{layer}")

    def layer_bias(self, layer: int) -> nn.Parameter:
        return getattr(self, f"bias_l{layer}")

    def forward(self, input: torch.Tensor, state: Optional[Sequence[torch.Tensor]] = None
                ) -> Tuple[torch.Tensor, State]:
        self._check_input(input, 3)
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        batch = x.shape[1]
        shape = (self.num_layers, self.hidden_size) if unbatched else (
            self.num_layers, batch, self.hidden_size)
        if state is None:
            zeros = x.new_zeros((self.num_layers, batch, self.hidden_size),
                                dtype=self.layer_weight(0).dtype)
            state = (zeros, zeros, zeros)
        else:
            state = self._check_state(state, input, shape)
            if unbatched:
                state = tuple(s.unsqueeze(1) for s in state)
        fused = use_fused(self.backend, x.device)
        finals = []
        for layer in range(self.num_layers):
            layer_state = (state[0][layer], state[1][layer], state[2][layer])
            x, final = src_layer(x, self.layer_weight(layer), self.layer_bias(layer), layer_state,
                                 self.constants, self.detach_recurrent, self.straight_through,
                                 fused)
            finals.append(final)
        i_n, h_n, hs_n = (torch.stack([f[j] for f in finals]) for j in range(3))
        if unbatched:
            return x.squeeze(1), (i_n.squeeze(1), h_n.squeeze(1), hs_n.squeeze(1))
        output = x.transpose(0, 1) if self.batch_first else x
        return output, (i_n, h_n, hs_n)


class SRCCell(_SRCBase):
    r"""One Spiking Recurrent Cell layer, one time step per call (streaming inference).

    Same arguments and constants as :class:`SRC` (one layer). ``forward(input, state=None)
    -> (spikes, (i, h, hs))``: input (B, input_size) or (input_size,); every tensor of the
    state (B, hidden_size). Running it over T steps gives the same result as ``SRC``.
    """

    def __init__(self, input_size: int, hidden_size: int, *, backend: str = "auto",
                 detach_recurrent: bool = True, straight_through: bool = True,
                 alpha: float = 0.9, rho: float = 3.0, r: float = 2.0, r_s: float = -7.0,
                 z: float = 0.0, z_hyp: float = 0.9, z_dep: float = 0.0,
                 gate_slope: float = 10.0, gate_threshold: float = 0.5, bias_max: float = -4.0,
                 bias_init: float = BIAS_INIT, weight_scale: float = 1.0, device=None, dtype=None):
        constants = dict(alpha=alpha, rho=rho, r=r, r_s=r_s, z=z, z_hyp=z_hyp, z_dep=z_dep,
                         gate_slope=gate_slope, gate_threshold=gate_threshold, bias_max=bias_max)
        super().__init__(input_size, hidden_size, backend, detach_recurrent, straight_through,
                         constants, bias_init, weight_scale)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(hidden_size, input_size, **factory))
        self.bias = nn.Parameter(torch.empty(hidden_size, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._init_layer(self.weight, self.bias)

    def forward(self, input: torch.Tensor, state: Optional[Sequence[torch.Tensor]] = None
                ) -> Tuple[torch.Tensor, State]:
        self._check_input(input, 2)
        unbatched = input.dim() == 1
        x = input.reshape(1, 1, -1) if unbatched else input.unsqueeze(0)
        batch = x.shape[1]
        shape = (self.hidden_size,) if unbatched else (batch, self.hidden_size)
        if state is None:
            zeros = x.new_zeros((batch, self.hidden_size), dtype=self.weight.dtype)
            state = (zeros, zeros, zeros)
        else:
            state = self._check_state(state, input, shape)
            if unbatched:
                state = tuple(s.unsqueeze(0) for s in state)
        spikes, final = src_layer(x, self.weight, self.bias, state, self.constants,
                                  self.detach_recurrent, self.straight_through,
                                  use_fused(self.backend, x.device))
        if unbatched:
            return spikes.reshape(-1), tuple(s.reshape(-1) for s in final)
        return spikes[0], final
