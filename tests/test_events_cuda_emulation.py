"""The event-driven projection's CUDA kernels (csrc/events/cuda/src_events_kernels.cuh), executed on the CPU
through their host emulation (tests/events_cuda_emulation.py): every dtype and density
against dense float64 products and against the CPU ops, bitwise determinism, the launches they
make, and the layer's gradient formulas on top of them."""

import pytest
import torch

import events_cuda_emulation
from helpers import assert_close, requires_fused
from events_helpers import DENSITIES, DTYPE_IDS, DTYPES, TOL, check_events, check_matmul_and_weight_grad, spikes

pytestmark = requires_fused


@pytest.fixture(scope="module")
def emu():
    return events_cuda_emulation.load()


@pytest.fixture(scope="module")
def ops(emu):
    return events_cuda_emulation.ops()


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_emulated_events_are_the_csr(ops, dtype, density):
    check_events(ops, 37, 60, density, dtype)


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_emulated_matmul_and_weight_grad_match_dense(ops, dtype, density):
    # H = 300: a full 256-thread block and a partial one.
    check_matmul_and_weight_grad(ops, 23, 31, 300, density, dtype, seed=4)


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (1, 1), (7, 3)])
def test_emulated_edge_shapes(ops, shape):
    for density in (0.0, 0.5, 1.0):
        check_events(ops, *shape, density, torch.float32)
        check_matmul_and_weight_grad(ops, *shape, 5, density, torch.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_emulated_kernels_match_cpu_ops(ops, dtype):
    """Same events bit for bit; products to the storage precision (the sums run in another
    order: by event on the GPU, by tile on the CPU)."""
    s = spikes(40, 50, 0.1, dtype, seed=9)
    w = torch.randn(70, 50, dtype=torch.float64).to(dtype)
    g = torch.randn(40, 70, dtype=torch.float64).to(dtype)
    cpu = torch.ops.srcext
    for a, b in zip(ops.src_events(s), cpu.src_events(s)):
        assert torch.equal(a, b)
    events = cpu.src_events(s)
    assert_close(ops.src_event_matmul(*events, w), cpu.src_event_matmul(*events, w), TOL[dtype], "u")
    assert_close(
        ops.src_event_weight_grad(*events, g, 50), cpu.src_event_weight_grad(*events, g, 50), TOL[dtype], "grad_weight"
    )


def test_emulated_weight_grad_is_bitwise_reproducible(ops):
    s = spikes(60, 40, 0.2, seed=10)
    g = torch.randn(60, 33)
    first = ops.src_projection_weight_grad(g, s, 1.0)
    for _ in range(2):
        assert torch.equal(ops.src_projection_weight_grad(g, s, 1.0), first)


def test_emulated_launches(emu, ops):
    """The kernels that run, with the grid the docs describe: rows for count / fill, (rows,
    column blocks) for the matmul, (inputs, column blocks) for the weight gradient."""
    R, F, H = 300, 20, 260
    s = spikes(R, F, 0.2, seed=11)
    w = torch.randn(H, F)
    emu.clear_launches()
    u, count = ops.src_projection(s, w, 1.0)
    ops.src_projection_weight_grad(torch.randn(R, H), s, 1.0)
    launches = [(x["kernel"].split("::")[-1], x["grid"], x["block"]) for x in emu.launches()]
    threads = emu.threads_per_block
    blocks = lambda n: (n + threads - 1) // threads  # noqa: E731
    assert launches[:3] == [
        ("event_count_kernel<float>", (blocks(R), 1, 1), (threads, 1, 1)),
        ("event_fill_kernel<float>", (blocks(R), 1, 1), (threads, 1, 1)),
        ("event_fill_kernel<float>", (blocks(R), 1, 1), (threads, 1, 1)),  # the unwritten check
    ]
    assert launches[3] == ("event_matmul_kernel<float, float>", (R, blocks(H), 1), (threads, 1, 1))
    assert launches[-1] == ("event_weight_grad_kernel<float, float>", (F, blocks(H), 1), (threads, 1, 1))
    # Too dense for max_density: only the count kernel runs, then the GEMM.
    emu.clear_launches()
    ops.src_projection(s, w, 0.01)
    assert [x["kernel"].split("::")[-1] for x in emu.launches()] == ["event_count_kernel<float>"]


def test_emulated_gradcheck(ops):
    s = spikes(6, 7, 0.4, torch.float64, seed=12).requires_grad_()
    w = torch.randn(300, 7, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda s, w: ops.src_projection(s, w, 1.0)[0], (s, w))


def test_emulated_bad_event_list_is_refused(ops):
    """A column out of range is refused before any kernel runs (on a GPU, where the op does not
    check the list's values, the kernels skip such columns instead: see src_events_kernels.cuh)."""
    s = spikes(5, 6, 0.5, seed=13)
    row_ptr, col, val = ops.src_events(s)
    with pytest.raises(ValueError, match="col must lie"):
        ops.src_event_matmul(row_ptr, col + 100, val, torch.randn(3, 6))
