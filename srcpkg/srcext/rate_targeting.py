"""Finding the scale of a layer's input weights that makes it fire at a target rate, and
counting its spikes: shared by :func:`srcext.calibrate_` (explicit, whole model) and the
layers' data-dependent initialisation (automatic, on the first training batch).

A layer's firing rate grows with the scale of its input weights (a stronger drive), so the
search brackets the target by doubling or halving the scale, then bisects on log(scale).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import torch

from .sequences import within_lengths


def spike_counts(spikes: torch.Tensor, lengths: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(neuron-steps with a spike, neuron-steps) of ``spikes`` (T, B, H) as float64 tensors on
    its device (no host sync), counting only the steps within each sample's length."""
    fired = spikes.detach() > 0
    if lengths is None:
        total = torch.tensor(float(fired.numel()), dtype=torch.float64, device=spikes.device)
    else:
        fired = fired & within_lengths(spikes.shape[0], lengths, spikes.device).unsqueeze(-1)
        total = lengths.to(device=spikes.device, dtype=torch.float64).sum() * spikes.shape[-1]
    return fired.sum(dtype=torch.float64), total


def solve_log_scale(
    rate_at: Callable[[float], float],
    target_rate: float,
    rel_tolerance: float,
    max_evaluations: int,
    max_scale: float,
) -> Tuple[float, float, float]:
    """The log-scale whose rate (``rate_at(log_scale)``) comes closest to ``target_rate``.

    Stops as soon as a rate is within ``rel_tolerance * target_rate`` of the target or
    ``max_evaluations`` rates were measured; log-scales stay within +-log(max_scale). Of equally
    close rates the smallest change wins (a silent input keeps its weights as they are).
    Returns (log-scale, its rate, the rate at log-scale 0)."""
    tried: Dict[float, float] = {}

    def measure(point: float) -> float:
        if point not in tried:
            tried[point] = rate_at(point)
        return tried[point]

    def ok(rate: float) -> bool:
        return abs(rate - target_rate) <= rel_tolerance * target_rate

    before = rate = measure(0.0)
    limit = math.log(max_scale)
    if not ok(before):
        # Bracket the target: below = a log-scale whose rate is under it, above = one over it.
        up = before < target_rate
        below, above = (0.0, None) if up else (None, 0.0)
        step = math.log(2.0)
        point = 0.0
        while len(tried) < max_evaluations and abs(point) < limit:
            point = max(-limit, min(limit, point + (step if up else -step)))
            step *= 2.0
            rate = measure(point)
            if ok(rate) or (rate >= target_rate) == up:
                break
            below, above = (point, above) if up else (below, point)
        if not ok(rate) and (rate >= target_rate) == up:
            below, above = (below, point) if up else (point, above)
            while len(tried) < max_evaluations:
                mid = 0.5 * (below + above)
                rate = measure(mid)
                if ok(rate):
                    break
                if rate < target_rate:
                    below = mid
                else:
                    above = mid
    best = min(tried, key=lambda p: (abs(tried[p] - target_rate), abs(p)))
    return best, tried[best], before
