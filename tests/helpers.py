"""Shared helpers of the srcext test suite: random constants, the oracle comparisons.
Imported as ``from helpers import ...`` (pytest puts tests/ on sys.path: ``pythonpath`` in
pyproject.toml)."""
from __future__ import annotations

import random

import pytest
import torch

import srcext
from srcext.reference import SRCConstants

requires_fused = pytest.mark.skipif(not srcext.fused_available("cpu"),
                                    reason="srcext._C not built")
FLAGS = [(d, s) for d in (True, False) for s in (True, False)]
FLAG_IDS = [f"detach={d}-st={s}" for d, s in FLAGS]


def random_constants(seed: int) -> SRCConstants:
    """Constants drawn inside the documented valid ranges, around the paper's regime."""
    rng = random.Random(seed)
    return SRCConstants(
        alpha=rng.uniform(0.5, 0.99), rho=rng.uniform(1.0, 4.0), r=rng.uniform(0.5, 3.0),
        r_s=rng.uniform(-8.0, -1.0), z=rng.uniform(0.0, 0.6), z_hyp=rng.uniform(0.5, 1.0),
        z_dep=rng.uniform(0.0, 0.3), gate_slope=rng.uniform(2.0, 15.0),
        gate_threshold=rng.uniform(0.0, 1.0), bias_max=rng.uniform(-5.0, -3.0))


def constants_cases():
    return [("default", SRCConstants())] + [(f"random{s}", random_constants(s)) for s in (1, 2, 3)]


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| (absolute when expected is ~0)."""
    actual, expected = actual.double(), expected.double()
    scale = max(expected.norm().item(), 1e-6)
    return (actual - expected).norm().item() / scale


def assert_close(actual, expected, tol: float, what: str = "") -> None:
    if expected is None:  # the reference gives no gradient: the fused one must be zero
        assert actual is None or torch.count_nonzero(actual) == 0, f"{what}: expected no gradient"
        return
    assert actual is not None, f"{what}: missing gradient"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    err = rel_err(actual, expected)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:.3g}"


def tolerance(dtype: torch.dtype, detach_recurrent: bool) -> float:
    """Oracle tolerance for a storage dtype (fused in `dtype` vs reference in float64).

    Exact BPTT through the bistable cell amplifies rounding, hence the looser float32 bound.
    """
    if dtype == torch.float64:
        return 1e-9
    if dtype == torch.float32:
        return 1e-4 if detach_recurrent else 2e-3
    return 3e-2  # bfloat16 / float16 storage, float32 math

