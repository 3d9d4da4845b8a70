"""The fused CUDA kernels against the float64 reference (run where a GPU exists, skipped cleanly
where none does; benchmarks/gpu_check.sh runs them on the GPU machine)."""
import copy

import pytest
import torch

import srcext
from srcext import SRC
from srcext.ops import CHECKPOINT_INTERVAL, constant_args, src_recurrence_fused
from srcext.reference import SRCConstants, src_recurrence_reference

from helpers import FLAG_IDS, FLAGS, assert_close, tolerance
from op_helpers import assert_matches_reference, over_oracle_cases, run_both

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.skipif(torch.cuda.is_available() and not srcext.fused_available("cuda"),
                       reason="srcext built without CUDA kernels"),
]


def cosine(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return (a @ b / (a.norm() * b.norm()).clamp_min(1e-30)).item()


@over_oracle_cases
def test_cuda_matches_reference(dtype, shape, name, k, detach, st):
    assert_matches_reference(dtype, shape, k, detach, st, device="cuda")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
def test_cuda_half_storage(dtype, detach, st):
    (outs, grads), (ref_outs, ref_grads) = run_both(12, 3, 40, SRCConstants(), dtype, detach, st,
                                                     device="cuda")
    for label, a, b in zip(("spikes", "i_n", "h_n", "hs_n"), outs, ref_outs):
        assert a.dtype == dtype
        assert_close(a, b, tolerance(dtype, True), label)
    for label, a, b in zip(("u", "bias", "i0"), grads, ref_grads):
        assert_close(a, b, tolerance(dtype, detach), f"grad {label}")
        assert cosine(a, b) > 0.999, label
        assert 0.97 < (a.double().norm() / b.double().norm()).item() < 1.03, label


def test_cuda_layer_multilayer_matches_cpu_reference():
    torch.manual_seed(0)
    model = SRC(13, 21, 3, backend="fused", dtype=torch.float64, detach_recurrent=False,
                straight_through=False, batch_first=True)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(6)
    ref = copy.deepcopy(model)
    ref.backend = "reference"
    model = model.cuda()
    x = (torch.rand(5, 27, 13, generator=torch.Generator().manual_seed(1)) < 0.3).double()
    out, _ = model(x.cuda())
    rout, _ = ref(x)
    grads = torch.autograd.grad(out.sum(), list(model.parameters()))
    rgrads = torch.autograd.grad(rout.sum(), list(ref.parameters()))
    assert_close(out.cpu(), rout, 1e-10, "output")
    for a, b in zip(grads, rgrads):
        assert_close(a.cpu(), b, 1e-8, "gradient")


def op_args(T, B, H, dtype):
    g = torch.Generator().manual_seed(0)
    u = torch.randn(T, B, H, generator=g, dtype=dtype).cuda().requires_grad_()
    bias = torch.full((H,), -5.0, dtype=dtype, device="cuda", requires_grad=True)
    states = [(torch.randn(B, H, generator=g, dtype=dtype) * 0.3).cuda().requires_grad_()
              for _ in range(3)]
    return [u, bias] + states


@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
def test_cuda_opcheck(detach, st):
    c = list(constant_args(SRCConstants(), torch.float64))
    args = op_args(CHECKPOINT_INTERVAL + 5, 2, 3, torch.float64)
    torch.library.opcheck(torch.ops.srcext.src_forward.default, args + c + [detach, st, True])
    u, bias, i0, h0, hs0 = (a.detach() for a in args)
    out = torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, *c, detach, st, True)
    grads = [torch.randn_like(u)] + [torch.randn_like(i0) for _ in range(3)]
    torch.library.opcheck(torch.ops.srcext.src_backward.default,
                          grads + [u, bias, out[4]] + c + [detach, st, False],
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


def linear_src_model():
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

    return Wrapped().cuda()


@pytest.mark.parametrize("mode", [None, "reduce-overhead"])
def test_cuda_compile_matches_eager(mode):
    torch._dynamo.reset()
    model = linear_src_model()
    x = (torch.rand(30, 8, 24, device="cuda") < 0.5).float()
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


def test_cuda_backward_is_deterministic():
    args = op_args(70, 64, 300, torch.float32)
    results = []
    for _ in range(2):
        spikes, final = src_recurrence_fused(args[0], args[1], tuple(args[2:]), SRCConstants(), True, True)
        results.append(torch.autograd.grad(spikes.square().sum() + final[0].sum(), args))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_cuda_non_default_stream_and_device_guard():
    args = op_args(40, 4, 50, torch.float32)
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
    u = (torch.randn(T, B, H, device="cuda", generator=g, dtype=torch.bfloat16) * 0.6)
    u.requires_grad_()
    bias = torch.full((H,), -6.0, device="cuda", dtype=torch.bfloat16)
    state = tuple(torch.zeros(B, H, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    spikes, final = src_recurrence_fused(u, bias, state, k)
    (gu,) = torch.autograd.grad(spikes, u, torch.ones_like(spikes))
    rows, cols = slice(B - 3, B), slice(H - 5, H)  # the neurons with the largest indices
    u_s = u.detach()[:, rows, cols].double().requires_grad_()
    ref, _ = src_recurrence_reference(u_s, bias[cols].double(),
                                      tuple(s[rows, cols].double() for s in state), k)
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
