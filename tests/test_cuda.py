"""Checks only the CUDA backend has: CUDA graphs, a bitwise deterministic backward, streams,
64-bit indexing, autocast + GradScaler (run where a GPU exists, skipped cleanly where none does;
benchmarks/gpu_check.sh runs them on the GPU machine). The generic op and layer checks run on
CUDA too, parametrised over the device in test_ops.py and test_layer.py; the event-driven
projection's CUDA limits (CUDA graphs; auto is the GEMM) are here too."""

import copy
import subprocess
import sys

import pytest
import torch

from srcext import SRC
from srcext.ops import src_recurrence_fused
from srcext.reference import SRCConstants, src_recurrence_reference

from helpers import assert_close, assert_compiled_matches_eager, cosine, requires_cuda
from op_helpers import op_args

pytestmark = requires_cuda


def test_cuda_graphs_compile_matches_eager():
    """torch.compile with mode="reduce-overhead" records CUDA graphs of the fused kernels."""
    assert_compiled_matches_eager("cuda", mode="reduce-overhead")


def test_cuda_backward_is_deterministic():
    args = op_args(70, 64, 300, torch.float32, "cuda")
    results = []
    for _ in range(2):
        spikes, final = src_recurrence_fused(args[0], args[1], tuple(args[2:]), SRCConstants(), True, True)
        results.append(torch.autograd.grad(spikes.square().sum() + final[0].sum(), args))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_cuda_non_default_stream_and_device_guard():
    args = op_args(40, 4, 50, torch.float32, "cuda")
    expected = src_recurrence_fused(args[0], args[1], tuple(args[2:]), SRCConstants())[0]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        out = src_recurrence_fused(args[0], args[1], tuple(args[2:]), SRCConstants())[0]
        grads = torch.autograd.grad(out.sum(), args[0])
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    assert torch.equal(out, expected)
    assert torch.isfinite(grads[0]).all()


@pytest.mark.slow
def test_cuda_index_beyond_int32():
    """T * B * H above 2^31 elements (bfloat16): runs, and a sample of neurons matches the
    reference (64-bit indexing throughout)."""
    B, H = 1024, 1024
    T = (2**31) // (B * H) + 3
    k = SRCConstants()
    g = torch.Generator(device="cuda").manual_seed(0)
    u = torch.randn(T, B, H, device="cuda", generator=g, dtype=torch.bfloat16) * 0.6
    u.requires_grad_()
    bias = torch.full((H,), -6.0, device="cuda", dtype=torch.bfloat16)
    state = tuple(torch.zeros(B, H, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    spikes, final = src_recurrence_fused(u, bias, state, k)
    (gu,) = torch.autograd.grad(spikes, u, torch.ones_like(spikes))
    rows, cols = slice(B - 3, B), slice(H - 5, H)  # the neurons with the largest indices
    u_s = u.detach()[:, rows, cols].double().requires_grad_()
    ref, _ = src_recurrence_reference(u_s, bias[cols].double(), tuple(s[rows, cols].double() for s in state), k)
    (gref,) = torch.autograd.grad(ref, u_s, torch.ones_like(ref))
    assert (ref > 0).any()
    assert_close(spikes[:, rows, cols].cpu(), ref.cpu(), 3e-2, "spikes")
    assert cosine(gu[:, rows, cols], gref) > 0.99


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_cuda_autocast_and_grad_scaler(dtype):
    """Under CUDA autocast the GEMM and the recurrence's storage use the autocast dtype (float32
    math inside); a GradScaler training step runs and produces finite float32 gradients."""
    torch.manual_seed(0)
    model = SRC(16, 32, 2, backend="fused", weight_scale=5.0).cuda()
    ref = copy.deepcopy(model).double()
    ref.backend = "reference"
    x = (torch.rand(25, 8, 16, device="cuda") < 0.4).float()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda")
    with torch.autocast("cuda", dtype=dtype):
        out, _ = model(x)
        loss = out.float().mean()
    assert out.dtype == dtype
    scaler.scale(loss).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    scaler.step(opt)
    scaler.update()
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    rout, _ = ref(x.double())
    rout.float().mean().backward()
    for g, rp in zip(grads, ref.parameters()):  # scaled gradients: compare directions
        assert cosine(g, rp.grad) > 0.9


def test_cuda_graphs_of_event_ops_say_why_they_cannot_capture():
    """Building events reads their count on the host (a device sync): under CUDA graph capture
    the ops raise a clear error instead of invalidating the capture. In a subprocess, so that a
    failed capture cannot leave this process's CUDA state behind for the tests after it."""
    code = """
import torch, srcext
s = (torch.rand(64, 40, device="cuda") < 0.05).float()
w = torch.randn(16, 40, device="cuda")
torch.ops.srcext.src_projection(s, w, 1.0)  # warm-up outside the capture
torch.cuda.synchronize()
g = torch.cuda.CUDAGraph()
try:
    with torch.cuda.graph(g):
        torch.ops.srcext.src_projection(s, w, 1.0)
except RuntimeError as e:
    print("RAISED", str(e).splitlines()[0])
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "RAISED srcext: building the events of a dense input reads the number of events" in run.stdout, (
        run.stdout + run.stderr
    )
    assert "CUDA graph cannot capture" in run.stdout


def test_cuda_auto_projection_is_the_gemm():
    """On a GPU "auto" is the dense GEMM at any density (measured on an H200: the events of a
    dense input never paid). Told apart by an inf weight on an input that is always 0: the
    GEMM's 0 * inf is NaN, the event path skips it."""
    from srcext.projection import crossover, input_projection

    w = torch.randn(30, 40, device="cuda")
    w[:, 0] = float("inf")
    x = (torch.rand(20, 10, 40, device="cuda") < 0.005).float()
    x[..., 0] = 0
    for dtype in (torch.float32, torch.bfloat16):
        assert crossover("cuda", dtype) == 0.0
        assert torch.isnan(input_projection(x.to(dtype), w.to(dtype), "auto")).all()
        assert torch.isfinite(input_projection(x.to(dtype), w.to(dtype), "sparse")).all()


def test_cuda_event_list_auto_follows_its_crossover():
    """An input given as events on a GPU: "auto" projects from the list in float32 at low
    density (measured faster than the GEMM on an H200 below ~3 %) and runs the GEMM above it and
    in bfloat16 (whose GEMM the list never beat). Inf weight on an always-0 input tells them apart."""
    from srcext.events import as_events
    from srcext.projection import crossover, input_projection

    w = torch.randn(30, 40, device="cuda")
    w[:, 0] = float("inf")
    for density in (0.005, 0.2):
        x = (torch.rand(50, 20, 40, device="cuda") < density).float()
        x[..., 0] = 0
        for dtype in (torch.float32, torch.bfloat16):
            e = as_events(x.to(dtype).to_sparse())
            expect_events = e.density() <= crossover("cuda", dtype, event_list=True)
            assert expect_events == (dtype == torch.float32 and density < 0.02)
            assert torch.isfinite(input_projection(e, w.to(dtype), "auto")).all() == expect_events
            assert torch.isfinite(input_projection(e, w.to(dtype), "sparse")).all()
            assert torch.isnan(input_projection(e, w.to(dtype), "dense")).all()
