"""Shared helpers of the srcext test suite: random constants, the oracle comparisons.
Imported as ``from helpers import ...`` (pytest puts tests/ on sys.path: ``pythonpath`` in
pyproject.toml)."""

from __future__ import annotations

import random

import pytest
import torch

import srcext
from srcext import SRC
from srcext.reference import SRCConstants

requires_fused = pytest.mark.skipif(not srcext.fused_available("cpu"), reason="srcext._C not built")
# The devices the fused kernels run on: every generic op and layer check is parametrised over
# them (tests/test_cuda.py holds only what is CUDA-specific). The CUDA entry is marked `cuda`
# (benchmarks/gpu_check.sh selects with -m cuda) and skipped without a GPU or CUDA kernels.
requires_cuda = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.skipif(
        torch.cuda.is_available() and not srcext.fused_available("cuda"), reason="srcext built without CUDA kernels"
    ),
]
DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]
over_devices = pytest.mark.parametrize("device", DEVICES)
FLAGS = [(d, s) for d in (True, False) for s in (True, False)]
FLAG_IDS = [f"detach={d}-st={s}" for d, s in FLAGS]


def random_constants(seed: int) -> SRCConstants:
    """Constants drawn inside the documented valid ranges, around the paper's regime."""
    rng = random.Random(seed)
    return SRCConstants(
        alpha=rng.uniform(0.5, 0.99),
        rho=rng.uniform(1.0, 4.0),
        r=rng.uniform(0.5, 3.0),
        r_s=rng.uniform(-8.0, -1.0),
        z=rng.uniform(0.0, 0.6),
        z_hyp=rng.uniform(0.5, 1.0),
        z_dep=rng.uniform(0.0, 0.3),
        gate_slope=rng.uniform(2.0, 15.0),
        gate_threshold=rng.uniform(0.0, 1.0),
        bias_max=rng.uniform(-5.0, -3.0),
    )


def constants_cases():
    return [("default", SRCConstants())] + [(f"random{s}", random_constants(s)) for s in (1, 2, 3)]


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| (absolute when expected is ~0)."""
    actual, expected = actual.double(), expected.double()
    scale = max(expected.norm().item(), 1e-6)
    return (actual - expected).norm().item() / scale


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """The cosine of the angle between two tensors seen as vectors (compared in float64)."""
    a, b = a.double().flatten(), b.double().flatten()
    return (a @ b / (a.norm() * b.norm()).clamp_min(1e-30)).item()


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


def linear_src_model() -> torch.nn.Module:
    """Linear(24, 32) into a 2-layer fused SRC(32, 48), weights strong enough that it fires."""
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.linear = torch.nn.Linear(24, 32)
    model.src = SRC(32, 48, 2, backend="fused")
    with torch.no_grad():
        model.linear.weight.mul_(4)
        model.src.weight_l0.mul_(6)
        model.src.weight_l1.mul_(6)

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            out, _ = self.m.src(self.m.linear(x))
            return out

    return Wrapped()


def assert_compiled_matches_eager(device: str, mode: str | None = None) -> None:
    """linear_src_model compiled with inductor (fullgraph, `mode`) on `device` gives the eager
    outputs and parameter gradients."""
    torch._dynamo.reset()
    model = linear_src_model().to(device)
    x = (torch.rand(30, 8, 24, generator=torch.Generator().manual_seed(0)) < 0.5).float().to(device)
    eager = model(x)
    eager_grads = torch.autograd.grad(eager.sum(), list(model.parameters()))
    compiled = torch.compile(model, fullgraph=True, mode=mode)
    for _ in range(3):  # CUDA graphs are recorded after warm-up runs
        out = compiled(x)
        grads = torch.autograd.grad(out.sum(), list(model.parameters()))
    torch.testing.assert_close(out, eager, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, eager_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert (eager > 0).any()


# SRCClassifier options away from their defaults, for the tests that rebuild a model from its
# config or from a checkpoint's options: a rebuild that dropped one would show.
NON_DEFAULT_CLASSIFIER = dict(
    hidden_layers=2,
    hidden_size=12,
    neurons_per_class=3,
    readout_decay=0.95,
    trainable_readout=True,
    hidden_init="identity",
    detach_recurrent=False,
)
