"""The ops as PyTorch sees them: opcheck, torch.compile, and the memory saved for backward."""

import pytest
import torch

import srcext
from srcext import SRC
from srcext.ops import CHECKPOINT_INTERVAL, constant_args
from srcext.reference import SRCConstants

from helpers import FLAGS, requires_fused

pytestmark = requires_fused


def op_args(T, B, H, dtype, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(T, B, H, generator=g, dtype=dtype)
    bias = torch.full((H,), -5.0, dtype=dtype)
    states = [torch.randn(B, H, generator=g, dtype=dtype) * 0.3 for _ in range(3)]
    tensors = [u, bias] + states
    if requires_grad:
        tensors = [t.requires_grad_() for t in tensors]
    return tensors


@pytest.mark.parametrize("detach,st", FLAGS)
@pytest.mark.parametrize("T", [0, 5, CHECKPOINT_INTERVAL + 3])
def test_opcheck_forward(T, detach, st):
    args = op_args(T, 2, 3, torch.float64) + list(constant_args(SRCConstants(), torch.float64)) + [detach, st, True]
    torch.library.opcheck(torch.ops.srcext.src_forward.default, args)


def test_opcheck_forward_inference_and_float32():
    args = op_args(7, 3, 4, torch.float32, requires_grad=False)
    torch.library.opcheck(
        torch.ops.srcext.src_forward.default, args + list(constant_args(SRCConstants())) + [True, True, False]
    )


@pytest.mark.parametrize("detach,st", FLAGS)
def test_opcheck_backward(detach, st):
    T, B, H = CHECKPOINT_INTERVAL + 2, 2, 3
    u, bias, i0, h0, hs0 = op_args(T, B, H, torch.float64, requires_grad=False)
    c = constant_args(SRCConstants(), torch.float64)
    out = torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, *c, detach, st, True)
    grads = [torch.randn(T, B, H, dtype=torch.float64)] + [torch.randn(B, H, dtype=torch.float64) for _ in range(3)]
    torch.library.opcheck(
        torch.ops.srcext.src_backward.default,
        grads + [u, bias, out[4]] + list(c) + [detach, st, False],
        test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"),
    )


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.src = SRC(12, 16, 2, backend="fused", init_rate=None)  # no data init: one graph
        self.head = torch.nn.Linear(16, 3)

    def forward(self, x):
        out, _ = self.src(x)
        return self.head(out.mean(0))


def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():
        model.src.weight_l0.mul_(8)
        model.src.weight_l1.mul_(8)
    x = (torch.rand(20, 4, 12) < 0.4).float()
    eager_out = model(x)
    eager_grads = torch.autograd.grad(eager_out.sum(), list(model.parameters()))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    grads = torch.autograd.grad(out.sum(), list(model.parameters()))
    assert torch.allclose(out, eager_out, atol=1e-6)
    for a, b in zip(grads, eager_grads):
        assert torch.allclose(a, b, atol=1e-5)
    assert eager_grads[0].abs().sum() > 0


def test_compile_inductor_no_graph_break():
    torch._dynamo.reset()
    model = Net()
    x = (torch.rand(10, 2, 12) < 0.4).float()
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(model, fullgraph=True)
    assert torch.allclose(compiled(x), model(x), atol=1e-5)


def saved_bytes(fn):
    """Bytes packed for backward by autograd while fn runs (each storage counted once)."""
    seen = {}

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        seen[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_saved_memory_per_neuron_step(backend, detach):
    """The fused recurrence saves at most 8 bytes per neuron-step in float32 (the drive u,
    plus (i, h, hs) every CHECKPOINT_INTERVAL steps: 4.75); the eager reference 8 or ~28."""
    T, B, H = 160, 8, 32
    u = torch.randn(T, B, H, requires_grad=True)
    bias = torch.full((H,), -6.0, requires_grad=True)
    state = tuple(torch.zeros(B, H) for _ in range(3))
    k = SRCConstants()
    run = srcext.ops.src_recurrence_fused if backend == "fused" else srcext.reference.src_recurrence_reference
    per_step = saved_bytes(lambda: run(u, bias, state, k, detach, True)) / (T * B * H)
    if backend == "fused":
        assert per_step <= 8.0
        assert per_step == pytest.approx(4.0 + 12.0 / CHECKPOINT_INTERVAL, abs=0.01)
    else:
        assert per_step >= 7.9  # the hook sees real saved tensors (the test is not vacuous)
