"""The fused ops against the pure-PyTorch reference, at the level of the time loop; the generic
checks run on every device (helpers.DEVICES), the CUDA-only ones are in test_cuda.py."""

import pytest
import torch

from srcext.ops import CHECKPOINT_INTERVAL, constant_args, src_recurrence_fused
from srcext.reference import SRCConstants

from helpers import FLAG_IDS, FLAGS, over_devices, requires_fused
from op_helpers import (
    assert_half_storage_matches_reference,
    assert_matches_reference,
    make_inputs,
    op_args,
    over_oracle_cases,
    run_both,
    upstream_layouts,
)

pytestmark = requires_fused


@over_devices
@over_oracle_cases
def test_fused_matches_reference(device, dtype, shape, name, k, detach, st):
    assert_matches_reference(dtype, shape, k, detach, st, device=device)


def test_cases_exercise_spikes_and_every_gradient_path():
    """Guard against a vacuous comparison: the inputs above make neurons fire, and every
    gradient the reference defines is non-zero."""
    (outs, grads), _ = run_both(33, 2, 67, SRCConstants(), torch.float64, False, True)
    assert 0.01 < (outs[0] > 0).double().mean() < 0.5
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


@over_devices
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
def test_half_storage_matches_reference(device, dtype, detach, st):
    assert_half_storage_matches_reference(dtype, detach, st, device=device)


@over_devices
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
def test_opcheck(device, detach, st):
    """The forward and backward ops' registrations (schema, fake tensors, autograd, AOT dispatch)
    on each device, across a checkpoint boundary."""
    c = list(constant_args(SRCConstants(), torch.float64))
    args = op_args(CHECKPOINT_INTERVAL + 5, 2, 3, torch.float64, device)
    torch.library.opcheck(torch.ops.srcext.src_forward.default, args + c + [detach, st, True])
    u, bias, i0, h0, hs0 = (a.detach() for a in args)
    out = torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, *c, detach, st, True)
    grads = [torch.randn_like(u)] + [torch.randn_like(i0) for _ in range(3)]
    torch.library.opcheck(
        torch.ops.srcext.src_backward.default,
        grads + [u, bias, out[4]] + c + [detach, st, False],
        test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"),
    )


@over_devices
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=["f64", "f32", "bf16"])
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
def test_layer_constants_as_floats_are_the_tensor_bitwise(device, dtype, detach, st):
    """Per-layer constants given as floats (layer_constants, the path of SRCConstants: no tensor
    for a compiled graph to keep on the host) give the bits of the same constants as a tensor,
    forward and backward, across checkpoints; and opcheck accepts the form."""
    k = SRCConstants(alpha=0.85, r_s=-6.0, z=0.1, gate_slope=8.0)
    args = [a.detach().to(dtype) for a in op_args(2 * CHECKPOINT_INTERVAL + 7, 3, 37, torch.float64, device)]
    values = list(k.cell_values())
    (c,) = constant_args(k, dtype)
    by_tensor = torch.ops.srcext.src_forward(*args, c, detach, st, True)
    by_floats = torch.ops.srcext.src_forward(*args, None, detach, st, True, None, values)
    assert by_tensor[0].sum() > 0, "the comparison must see spikes"
    for a, b in zip(by_tensor, by_floats):
        assert torch.equal(a, b)
    g = torch.Generator().manual_seed(4)
    grads = [torch.randn(t.shape, generator=g, dtype=torch.float64).to(device, dtype) for t in by_tensor[:4]]
    u, bias = args[:2]
    tensor_grads = torch.ops.srcext.src_backward(*grads, u, bias, by_tensor[4], c, detach, st, False)
    float_grads = torch.ops.srcext.src_backward(*grads, u, bias, by_tensor[4], None, detach, st, False, None, values)
    for a, b in zip(tensor_grads[:5], float_grads[:5]):
        assert torch.equal(a, b)
    for no_grad in (tensor_grads[5], float_grads[5]):  # no constants' gradient: empty, on u's device
        assert no_grad.numel() == 0 and no_grad.device == u.device
    if dtype == torch.float64:
        leaves = [a.clone().requires_grad_() for a in args]
        torch.library.opcheck(torch.ops.srcext.src_forward.default, (*leaves, None, detach, st, True, None, values))


def test_layer_constants_bad_input():
    u, bias, i0, h0, hs0 = (a.detach() for a in op_args(5, 2, 3, torch.float32, "cpu"))
    (c,) = constant_args(SRCConstants(), torch.float32)
    values = list(SRCConstants().cell_values())
    with pytest.raises(ValueError, match="not both"):
        torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, c, True, True, True, None, values)
    with pytest.raises(ValueError, match="got neither"):
        torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, None, True, True, True)
    with pytest.raises(ValueError, match="must hold K = 9 values, got 8"):
        torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, None, True, True, True, None, values[:8])
    out = torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, None, True, True, True, None, values)
    grads = [torch.ones_like(u)] + [torch.zeros_like(i0)] * 3
    with pytest.raises(ValueError, match="layer_constants have no gradient"):
        torch.ops.srcext.src_backward(*grads, u, bias, out[4], None, True, True, True, None, values)


def test_gradcheck_exact_bptt_float64():
    k = SRCConstants(z=0.2)
    u, b, s = make_inputs(2 * CHECKPOINT_INTERVAL + 3, 2, 3, k, torch.float64, seed=5)
    leaves = tuple(t.clone().requires_grad_() for t in (u, b) + s)

    def fn(u, b, i0, h0, hs0):
        spikes, final = src_recurrence_fused(u, b, (i0, h0, hs0), k, False, False)
        return (spikes,) + final

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_double_backward_raises_clear_error():
    k = SRCConstants()
    u, b, s = make_inputs(5, 2, 3, k, torch.float64, seed=2)
    u.requires_grad_()
    b.requires_grad_()
    spikes, _ = src_recurrence_fused(u, b, s, k, False, False)
    (gu,) = torch.autograd.grad(spikes.sum(), u, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        gu.sum().backward()


def test_backward_without_saved_checkpoints_raises():
    k = SRCConstants()
    u, b, s = make_inputs(5, 2, 3, k, torch.float32, seed=2)
    u = u.float().requires_grad_()
    out = torch.ops.srcext.src_forward(u, b.float(), *(x.float() for x in s), *constant_args(k), True, True, False)
    with pytest.raises(RuntimeError, match="save_for_backward"):
        out[0].sum().backward()


def test_bias_gradient_is_deterministic():
    k = SRCConstants()
    grads = []
    for _ in range(2):
        (outs, g), _ = run_both(40, 8, 70, k, torch.float32, True, True, seed=9)
        grads.append(g)
    for a, b in zip(*grads):
        assert torch.equal(a, b)


@pytest.mark.parametrize("layout", ["scalar", "over_T", "transposed", "strided"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=["f64", "f32", "bf16"])
def test_backward_reads_any_upstream_layout_without_copying(dtype, layout):
    """The backward gives bitwise the same gradients for any layout of the upstream gradient,
    and reads it in place: no clone or copy of it is made (a broadcast gradient from .sum()
    used to be copied to a full (T, B, H) tensor)."""
    T, B, H = 2 * CHECKPOINT_INTERVAL + 3, 3, 70
    k = SRCConstants()
    u, b, s = (
        t.to(dtype) if isinstance(t, torch.Tensor) else tuple(x.to(dtype) for x in t)
        for t in make_inputs(T, B, H, k, dtype, seed=4)
    )
    c = constant_args(k, dtype)
    out = torch.ops.srcext.src_forward(u, b, *s, *c, True, True, True)
    strided, contiguous = upstream_layouts(T, B, H, dtype)[layout]
    state_grads = [torch.zeros(B, H, dtype=dtype) for _ in range(3)]
    expected = torch.ops.srcext.src_backward(contiguous, *state_grads, u, b, out[4], *c, False, True, False)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        got = torch.ops.srcext.src_backward(strided, *state_grads, u, b, out[4], *c, False, True, False)
    copies = [
        (e.key, e.input_shapes)
        for e in prof.key_averages(group_by_input_shape=True)
        if e.key in ("aten::clone", "aten::copy_", "aten::contiguous") and [T, B, H] in e.input_shapes
    ]
    assert copies == []
    for a, e in zip(got, expected):
        assert torch.equal(a, e)
