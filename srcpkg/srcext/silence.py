"""The watch that tells a user when an SRC layer goes silent (or saturates) during training.

A layer that never spikes passes nothing on and learns nothing, yet trains without an error;
this watch turns that into one warning that names the layer and the fix. It samples the
spikes of a few training calls (the first three, then one in ``SAMPLE_EVERY``), keeps their
counts on the spikes' device and reads them on the host only once per window of samples, so
on a GPU it adds no per-step synchronisation.
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Optional

import torch

from .rate_targeting import spike_counts

SAMPLE_EVERY = 50  # sequence layers: calls 1, 2, 3, then every 50th
WINDOW_SAMPLES = 3  # a verdict needs this many sampled sequence calls ...
CELL_WINDOW_STEPS = 200  # ... or this many steps of a one-step cell (every step sampled)
SATURATED_RATE = 0.9  # above this a layer fires at nearly every step: no information


class SilenceWatch:
    """Samples one module's spikes in training and warns once per layer-direction whose
    firing over a window is 0 or above :data:`SATURATED_RATE`."""

    def __init__(self, every_step: bool) -> None:
        self.every_step = every_step  # SRCCell: one step a call, so every call is a sample
        self.calls: Dict[str, int] = {}
        self.window: Dict[str, List] = {}  # suffix -> [fired, total, samples]
        self.done: set = set()  # warned, or seen firing healthily: no need to watch further

    def observe(self, module, suffix: str, spikes: torch.Tensor, lengths: Optional[torch.Tensor]) -> None:
        if suffix in self.done:
            return
        n = self.calls[suffix] = self.calls.get(suffix, 0) + 1
        if not (self.every_step or n <= WINDOW_SAMPLES or n % SAMPLE_EVERY == 0):
            return
        fired, total = spike_counts(spikes, lengths)
        window = self.window.setdefault(suffix, [0, 0, 0])
        window[0] = window[0] + fired
        window[1] = window[1] + total
        window[2] += 1
        if window[2] < (CELL_WINDOW_STEPS if self.every_step else WINDOW_SAMPLES):
            return
        fired, total = torch.stack([window[0], window[1]]).tolist()  # the window's one host read
        del self.window[suffix]
        if total == 0:
            return
        rate = fired / total
        if 0 < rate <= SATURATED_RATE:
            self.done.add(suffix)  # healthy once: later silence is the user's training, not the init
            return
        self.done.add(suffix)
        # stacklevel: the user's line that called the module
        warnings.warn(_message(module, suffix, rate, int(total)), RuntimeWarning, stacklevel=6)


def _message(module, suffix: str, rate: float, neuron_steps: int) -> str:
    layer = f"{type(module).__name__}({module.input_size}, {module.hidden_size})" + (
        f" layer {suffix}" if suffix else ""
    )
    if rate == 0:
        what = f"fired no spike in {neuron_steps} neuron-steps of training: it passes nothing on and learns nothing"
        fix = "its input is too weak for its bias"
    else:
        what = f"fires at {rate:.0%} of its neuron-steps in training (saturated): its spikes carry no information"
        fix = "its input is too strong"
    return (
        f"srcext: {layer} {what} ({fix}). Fixes: keep the default data-dependent init "
        f"(init_rate=0.05, done on the first training batch), call srcext.calibrate_(model, batch) "
        f"after changing the weights, or rescale the input (weight_scale=)."
    )
