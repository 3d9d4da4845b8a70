"""What the event-projection tests share (tests/test_events.py and the CUDA emulation's
tests/test_events_cuda_emulation.py): dtypes and densities, tolerances, random spike input,
and the checks of the ops against dense float64 products."""

import torch

from helpers import assert_close

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
DTYPE_IDS = ["f64", "f32", "bf16", "f16"]
DENSITIES = [0.0, 0.005, 0.03, 0.3, 1.0]
# Relative error of a product of length F against float64 (storage rounding of the result).
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}


def spikes(R, F, density, dtype=torch.float32, seed=0, analog=True):
    """(R, F) with about `density` of its entries non-zero: analog values (either sign, as
    SRC's own pulses may be scaled) or ones."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(R, F, generator=g) < density
    values = torch.randn(R, F, generator=g, dtype=torch.float64) if analog else torch.ones(R, F)
    return (mask * values).to(dtype)


def ops_of(namespace="srcext"):
    return getattr(torch.ops, namespace)


def check_events(ops, R, F, density, dtype, seed=0, device="cpu"):
    s = spikes(R, F, density, dtype, seed).to(device)
    row_ptr, col, val = ops.src_events(s)
    nz = s.ne(0)
    rows, cols = nz.nonzero(as_tuple=True)  # row-major: the CSR's order
    assert row_ptr.dtype == col.dtype == torch.int64 and val.dtype == dtype
    assert row_ptr.tolist() == [0] + nz.sum(1).cumsum(0).tolist()
    assert torch.equal(col, cols)
    assert torch.equal(val, s[rows, cols])


def check_matmul_and_weight_grad(ops, R, F, H, density, dtype, seed=0, device="cpu"):
    s = spikes(R, F, density, dtype, seed).to(device)
    g = torch.Generator().manual_seed(seed + 1)
    weight = torch.randn(H, F, generator=g, dtype=torch.float64).to(device, dtype)
    grad_u = torch.randn(R, H, generator=g, dtype=torch.float64).to(device, dtype)
    u_ref = s.double() @ weight.double().t()
    gw_ref = grad_u.double().t() @ s.double()
    row_ptr, col, val = ops.src_events(s)
    u = ops.src_event_matmul(row_ptr, col, val, weight)
    gw = ops.src_event_weight_grad(row_ptr, col, val, grad_u, F)
    assert u.dtype == gw.dtype == dtype and u.shape == (R, H) and gw.shape == (H, F)
    assert u.device == gw.device == s.device
    assert_close(u, u_ref, TOL[dtype], "u")
    assert_close(gw, gw_ref, TOL[dtype], "grad_weight")
    # The composite ops, on both sides of the crossover.
    for max_density in (0.0, density, 1.0):
        up, count = ops.src_projection(s, weight, max_density)
        assert count.item() == int(s.ne(0).sum())
        assert_close(up, u_ref, TOL[dtype], f"src_projection u at max_density={max_density}")
        gwp = ops.src_projection_weight_grad(grad_u, s, max_density)
        assert_close(gwp, gw_ref, TOL[dtype], f"src_projection grad_weight at {max_density}")
    if density == 0.0 or R * F == 0:
        assert torch.count_nonzero(u) == 0 and torch.count_nonzero(gw) == 0
