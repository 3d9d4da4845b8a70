"""Firing rates of the SRC layers inside any model, and a data-driven initialiser that scales
each layer's weights to a target firing rate.

A layer is one direction of one layer of an :class:`srcext.SRC` (named
``"<module name>.l<k>"``, ``"<module name>.l<k>_reverse"``) or an :class:`srcext.SRCCell`
(named by its module name). Its firing rate is the fraction of its neuron-steps with a spike
(h > 0), counting only the steps within each sample's length, over every call while recording.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Dict, Iterator, List, Optional

import torch
from torch import nn

from .layer_base import _SRCBase
from .rate_targeting import solve_log_scale, spike_counts


class FiringRates(dict):
    """Layer name -> firing rate, filled in as the recorded forward passes run (in the order
    the layers first run). ``counts`` holds (neuron-steps with a spike, neuron-steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Dict[str, List[int]] = {}
        self.units: Dict[str, tuple] = {}

    def _add(
        self, name: str, module: _SRCBase, suffix: str, spikes: torch.Tensor, lengths: Optional[torch.Tensor]
    ) -> None:
        fired, total = (int(c) for c in spike_counts(spikes, lengths))
        count = self.counts.setdefault(name, [0, 0])
        count[0] += fired
        count[1] += total
        self.units.setdefault(name, (module, suffix))
        self[name] = count[0] / count[1] if count[1] else float("nan")


def _layer_name(module_name: str, suffix: str) -> str:
    return ".".join(part for part in (module_name, suffix) if part) or "<model>"


@contextlib.contextmanager
def record_firing_rates(model: nn.Module) -> Iterator[FiringRates]:
    """Record the firing rate of every SRC layer of ``model`` during the forward passes run
    inside the block::

        with srcext.record_firing_rates(model) as rates:
            model(x)
        print(rates)   # {"rnn.l0": 0.031, "rnn.l1": 0.0, ...}

    Costs one comparison and one sum per layer and call (and a host sync each)."""
    rates = FiringRates()
    modules = [(name, m) for name, m in model.named_modules() if isinstance(m, _SRCBase)]
    previous = {m: m._spike_recorder for _, m in modules}
    for name, module in modules:

        def recorder(m, suffix, spikes, lengths, _name=name):
            rates._add(_layer_name(_name, suffix), m, suffix, spikes, lengths)

        module._spike_recorder = recorder
    try:
        yield rates
    finally:
        for module, recorder in previous.items():
            module._spike_recorder = recorder


def _call(model: nn.Module, sample_input):
    if type(sample_input) is tuple:  # not a PackedSequence (a named tuple)
        return model(*sample_input)
    if isinstance(sample_input, dict):
        return model(**sample_input)
    return model(sample_input)


def firing_rates(model: nn.Module, sample_input) -> FiringRates:
    """The firing rate of every SRC layer of ``model`` on one forward pass of
    ``sample_input`` (a tensor or PackedSequence; a plain tuple is unpacked as positional
    arguments, a dict as keywords), without gradient, in the model's current mode."""
    with torch.no_grad(), record_firing_rates(model) as rates:
        _call(model, sample_input)
    return rates


@contextlib.contextmanager
def _calibration_mode(model: nn.Module):
    """eval() (no dropout) and an empty carried state for stateful layers, restored after."""
    training = {m: m.training for m in model.modules()}
    stored = {m: m.state for m in model.modules() if isinstance(m, _SRCBase)}
    model.eval()
    try:
        yield
    finally:
        for m, mode in training.items():
            m.training = mode
        for m, state in stored.items():
            m.state = state


def calibrate_(
    model: nn.Module,
    sample_input,
    target_rate: float = 0.05,
    *,
    rel_tolerance: float = 0.1,
    max_evaluations: int = 30,
    max_scale: float = 2.0**12,
) -> Dict[str, dict]:
    """Scale the input weights of each SRC layer of ``model``, layer by layer in the order
    they run, so that it fires at ``target_rate`` on ``sample_input`` (in place).

    For each layer, in turn, a bisection on log(scale) of that layer's weights (the layers
    before it already calibrated) runs the model without gradient on ``sample_input`` until
    the layer's firing rate is within ``rel_tolerance * target_rate`` of the target or
    ``max_evaluations`` forward passes are spent; the scale that came closest is kept (within
    [1 / max_scale, max_scale] of the weights as they were). Deterministic: the model runs in
    eval mode (no dropout) from each stateful layer's initial state; modes and carried states
    are restored afterwards. Biases are not changed.

    Returns, per layer name, ``{"scale": s, "rate": firing rate after, "rate_before": ...}``;
    warns about layers that could not reach the target (e.g. no input reaches them).
    """
    if not (isinstance(target_rate, (int, float)) and 0.0 < target_rate < 1.0):
        raise ValueError(f"calibrate_: target_rate must be in (0, 1), got {target_rate!r}")
    if not (isinstance(max_scale, (int, float)) and max_scale > 1.0):
        raise ValueError(f"calibrate_: max_scale must be > 1, got {max_scale!r}")
    if not any(isinstance(m, _SRCBase) for m in model.modules()):
        raise ValueError("calibrate_: the model holds no srcext.SRC or srcext.SRCCell module")
    report: Dict[str, dict] = {}
    with _calibration_mode(model), torch.no_grad():

        def measure(name: str) -> float:
            for m in model.modules():
                if isinstance(m, _SRCBase):
                    m.reset_state()
            with record_firing_rates(model) as rates:
                _call(model, sample_input)
            return rates.get(name, float("nan")), rates

        _, first = measure("")
        names = list(first)  # execution order of the layers
        for name in names:
            module, suffix = first.units[name]
            weight = next(w for s, w, _ in module._units() if s == suffix)
            original = weight.detach().clone()

            def rate_at(log_scale: float) -> float:
                weight.copy_(original * math.exp(log_scale))
                return measure(name)[0]

            best, rate, before = solve_log_scale(rate_at, target_rate, rel_tolerance, max_evaluations, max_scale)
            weight.copy_(original * math.exp(best))
            module._data_init_settled()  # an explicit calibration replaces the automatic one
            report[name] = {"scale": math.exp(best), "rate": rate, "rate_before": before}
            if abs(rate - target_rate) > rel_tolerance * target_rate:
                warnings.warn(
                    f"calibrate_: layer {name} fires at {rate:.4f} after calibration "
                    f"(target {target_rate}); its input may be silent or saturating",
                    stacklevel=2,
                )
    return report
