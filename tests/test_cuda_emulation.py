"""The CUDA kernels, executed on the CPU through their host emulation (tests/cuda_emulation.py):
every kernel instance against the CPU op and the float64 reference, the launches they make,
and the checks of the CUDA suite that make sense without a device."""

import math

import pytest
import torch

from srcext.constants import CELL_CONSTANTS
from srcext.ops import CHECKPOINT_INTERVAL, constant_args, src_recurrence_fused
from srcext.ops.recurrence import LANES_ENV
from srcext.reference import SRCConstants, src_recurrence_reference

import cuda_emulation
from cuda_emulation import src_recurrence as emulated
from helpers import FLAG_IDS, FLAGS, assert_close, random_constants, rel_err, requires_fused, tolerance
from op_helpers import (
    assert_half_storage_matches_reference,
    assert_matches_reference,
    make_inputs,
    run_both,
    upstream_layouts,
)
from lengths_helpers import CASE_IDS as LENGTH_CASE_IDS, CASES as LENGTH_CASES, check_against_alone

pytestmark = requires_fused

# T: empty, one step, exactly one checkpoint chunk, one past it, two chunks and one; B * H not
# a multiple of the 256-thread block; H = 1.
SHAPES = [
    (0, 2, 3),
    (1, 1, 1),
    (CHECKPOINT_INTERVAL, 3, 100),
    (CHECKPOINT_INTERVAL + 1, 2, 1),
    (2 * CHECKPOINT_INTERVAL + 1, 3, 97),
]
CONSTANTS = [("default", SRCConstants())] + [(f"random{s}", random_constants(s)) for s in (4, 5)]
DTYPE_NAMES = {
    torch.float32: ("float", "float"),
    torch.float64: ("double", "double"),
    torch.bfloat16: ("c10::BFloat16", "float"),
    torch.float16: ("c10::Half", "float"),
}
ALL_DTYPES = list(DTYPE_NAMES)
DTYPE_IDS = ["f32", "f64", "bf16", "f16"]


@pytest.fixture(scope="module")
def emu():
    return cuda_emulation.load()


@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("name,k", CONSTANTS, ids=[c[0] for c in CONSTANTS])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_emulated_kernels_match_reference(emu, dtype, shape, name, k, detach, st):
    assert_matches_reference(dtype, shape, k, detach, st, device="cpu", fused=emulated)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
def test_emulated_half_storage_matches_reference(emu, dtype, detach, st):
    assert_half_storage_matches_reference(dtype, detach, st, fused=emulated)


# The emulated device math (expf, 1/d) and the CPU kernels' vectorised math differ by an ulp or
# two per operation; over a run that stays at the level of the storage precision.
CPU_AGREEMENT = {torch.float64: 1e-12, torch.float32: 2e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}


@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=DTYPE_IDS)
def test_emulated_kernels_match_cpu_op(emu, dtype, detach, st):
    """Every storage dtype and flag combination, training and inference forward: the emulated
    CUDA kernels and the CPU kernels agree to the storage precision."""
    k = random_constants(7)
    T, B, H = 2 * CHECKPOINT_INTERVAL + 5, 3, 91
    u64, b64, s64 = make_inputs(T, B, H, k, dtype, seed=3)
    results = []
    for fn in (emulated, src_recurrence_fused):
        leaves = [t.to(dtype).requires_grad_() for t in (u64, b64) + s64]
        spikes, final = fn(leaves[0], leaves[1], tuple(leaves[2:]), k, detach, st)
        outs = (spikes,) + tuple(final)
        g = torch.Generator().manual_seed(11)
        cot = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(dtype) for o in outs]
        grads = torch.autograd.grad(sum((o * c).sum() for o, c in zip(outs, cot)), leaves)
        with torch.no_grad():  # the inference instance (no checkpoints)
            inference = fn(*(t.detach() for t in leaves[:2]), tuple(t.detach() for t in leaves[2:]), k, detach, st)
        results.append((outs, grads, (inference[0],) + tuple(inference[1])))
    (outs, grads, inf), (cpu_outs, cpu_grads, _) = results
    # Exact BPTT through the bistable cell amplifies any rounding difference, as against the
    # reference.
    tol = CPU_AGREEMENT[dtype] if detach else max(CPU_AGREEMENT[dtype], tolerance(dtype, False))
    for label, a, b in zip(("spikes", "i_n", "h_n", "hs_n"), outs, cpu_outs):
        assert a.dtype == dtype and rel_err(a, b) <= CPU_AGREEMENT[dtype], label
    for label, a, b in zip(("u", "bias", "i0", "h0", "hs0"), grads, cpu_grads):
        assert a.dtype == dtype and rel_err(a, b) <= tol, f"grad {label}: {rel_err(a, b):.3g}"
    for a, b in zip(inf, outs):  # inference runs the same math as training
        assert torch.equal(a, b.detach())


@pytest.mark.parametrize("H", [101, 100], ids=["H_odd", "H_even"])
def test_launch_record_names_the_instance_grid_and_stream(emu, H):
    """Each op launches one kernel: the template instance for the dtype and flags, in blocks of
    256 on the current stream; the forward two neurons a thread (lanes) where H is even and the
    storage at most 4 bytes, else one; the detached backward two where H is even and the storage
    16-bit, the exact one always one."""
    T, B = 20, 3
    N = B * H
    for dtype, (storage, math_type) in DTYPE_NAMES.items():
        lanes = 2 if H % 2 == 0 and dtype != torch.float64 else 1
        backward_lanes = 2 if H % 2 == 0 and dtype in (torch.bfloat16, torch.float16) else 1
        for detach, st in FLAGS:
            u64, b64, s64 = make_inputs(T, B, H, SRCConstants(), dtype, seed=1)
            leaves = [t.to(dtype).requires_grad_() for t in (u64, b64) + s64]
            emu.clear_launches()
            spikes, _ = emulated(leaves[0], leaves[1], tuple(leaves[2:]), SRCConstants(), detach, st)
            spikes.backward(torch.ones_like(spikes))  # a dense upstream gradient
            with torch.no_grad():
                emulated(leaves[0], leaves[1], tuple(leaves[2:]), SRCConstants(), detach, st)
            launches = emu.launches()
            st_flag = str(st).lower()
            # <storage, math, save, lengths, per_neuron, lanes>; the backward's <storage, math,
            # straight_through, lengths, per_neuron, constant_grads[, lanes: the detached one]>
            flags = f"{storage}, {math_type}, {st_flag}, false, false, false"
            backward = (
                f"src_detached_backward_kernel<{flags}, {backward_lanes}>"
                if detach
                else f"src_exact_backward_kernel<{flags}>"
            )
            expected = [
                f"srcext::cuda::src_forward_kernel<{storage}, {math_type}, true, false, false, {lanes}>",
                f"srcext::cuda::{backward}",
                f"srcext::cuda::src_forward_kernel<{storage}, {math_type}, false, false, false, {lanes}>",
            ]
            assert [r["kernel"] for r in launches] == expected
            for r in launches:
                kernel_lanes = lanes if "forward" in r["kernel"] else (backward_lanes if detach else 1)
                threads = N // kernel_lanes
                assert r["grid"] == (math.ceil(threads / emu.threads_per_block), 1, 1)
                assert r["block"] == (emu.threads_per_block, 1, 1)
                assert r["stream"] == emu.stream_token()
                assert r["blocks_run"] == math.ceil(threads / emu.threads_per_block)


@pytest.mark.parametrize("voltage", [False, True], ids=["spikes", "voltage"])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=["f32", "bf16", "f16"])
def test_two_lanes_are_one_lane(emu, monkeypatch, dtype, lengths, voltage):
    """The two-lane kernels (H even; the detached backward with 16-bit storage) run each lane's
    cell exactly as the one-lane ones do: the same inputs with the drive one element off a
    pair's alignment, or with LANES_ENV set (either sends them to the one-lane instances), give
    bitwise the same outputs, checkpoints and gradients, in training and inference, per-layer
    and per-neuron constants (whose backward has one lane), both gradient settings of the
    detached backward. T leaves a partial chunk (the last in time) as well as full ones."""
    T, B, H = 2 * CHECKPOINT_INTERVAL + 7, 3, 66
    steps = torch.tensor([T, 5, CHECKPOINT_INTERVAL + 1]) if lengths else None
    layer = random_constants(8)
    per = [random_constants(900 + h) for h in range(H)]
    neuron = torch.tensor([[getattr(c, n) for c in per] for n in CELL_CONSTANTS], dtype=torch.float32)
    upstream = torch.randn(T, B, H, generator=torch.Generator().manual_seed(6)).to(dtype)
    for k, st in ((layer, True), (layer, False), (neuron, True)):
        u64, b64, s64 = make_inputs(T, B, H, layer, dtype, seed=5)
        padded = torch.empty(T * B * H + 1, dtype=dtype)
        results = []
        for offset, forced in ((0, False), (1, False), (0, True)):
            if forced:
                monkeypatch.setenv(LANES_ENV, "1")
            u = padded[offset : offset + T * B * H].view(T, B, H)
            with torch.no_grad():
                u.copy_(u64.to(dtype))
            leaves = [u.requires_grad_()] + [t.to(dtype).requires_grad_() for t in (b64,) + s64]
            emu.clear_launches()
            run = dict(lengths=steps, emit_voltage=voltage, straight_through=st)
            spikes, final = emulated(leaves[0], leaves[1], tuple(leaves[2:]), k, **run)
            grads = torch.autograd.grad((spikes * upstream).sum() + sum(f.sum() for f in final), leaves)
            with torch.no_grad():
                inference = emulated(leaves[0], leaves[1], tuple(leaves[2:]), k, **run)
            kernels = [r["kernel"] for r in emu.launches()]
            lanes = 2 if offset == 0 and not forced else 1
            assert len(kernels) == 3 and kernels[0].endswith(f", {lanes}>") and kernels[2].endswith(f", {lanes}>")
            paired = lanes == 2 and dtype != torch.float32 and k is layer
            assert kernels[1].startswith("srcext::cuda::src_detached_backward_kernel") and kernels[1].endswith(
                f", {2 if paired else 1}>"
            )
            results.append((spikes, *final, *grads, inference[0], *inference[1]))
            monkeypatch.delenv(LANES_ENV, raising=False)
        for other in results[1:]:
            for a, b in zip(results[0], other):
                assert torch.equal(a, b)


def test_launch_record_with_lengths(emu):
    u64, b64, s64 = make_inputs(9, 2, 5, SRCConstants(), torch.float32, seed=1)
    leaves = [t.float().requires_grad_() for t in (u64, b64) + s64]
    emu.clear_launches()
    spikes, _ = emulated(leaves[0], leaves[1], tuple(leaves[2:]), SRCConstants(), lengths=torch.tensor([9, 4]))
    spikes.sum().backward()
    assert [r["kernel"] for r in emu.launches()] == [
        "srcext::cuda::src_forward_kernel<float, float, true, true, false, 1>",
        "srcext::cuda::src_detached_backward_kernel<float, float, true, true, false, false, 1>",
    ]


def test_empty_problems_launch_nothing(emu):
    for T, B, H in [(0, 2, 3), (5, 0, 3)]:
        u64, b64, s64 = make_inputs(T, B, H, SRCConstants(), torch.float32, seed=1)
        emu.clear_launches()
        emulated(u64.float(), b64.float(), tuple(s.float() for s in s64), SRCConstants())
        assert emu.launches() == []


@pytest.mark.parametrize("grid,block", [((3, 1, 1), (5, 1, 1)), ((2, 3, 2), (4, 2, 3)), ((1, 1, 1), (1024, 1, 1))])
def test_emulated_grid_runs_every_thread_once(emu, grid, block):
    out = emu.probe_launch(grid, block)
    threads = block[0] * block[1] * block[2]
    blocks = grid[0] * grid[1] * grid[2]
    expected = torch.tensor([b * 100000 + t for b in range(blocks) for t in range(threads)])
    assert torch.equal(out, expected)


@pytest.mark.parametrize(
    "grid,block",
    [
        ((1, 1, 1), (1025, 1, 1)),
        ((1, 1, 1), (1, 1, 65)),
        ((1, 65536, 1), (32, 1, 1)),
        ((0, 1, 1), (32, 1, 1)),
        ((1, 1, 1), (0, 1, 1)),
    ],
)
def test_emulated_launch_rejects_what_the_runtime_rejects(emu, grid, block):
    with pytest.raises(RuntimeError, match="invalid configuration argument"):
        emu.probe_launch(grid, block)


def test_emulated_backward_is_deterministic(emu):
    u64, b64, s64 = make_inputs(70, 4, 300, SRCConstants(), torch.float32, seed=2)
    results = []
    for _ in range(2):
        leaves = [t.float().requires_grad_() for t in (u64, b64) + s64]
        spikes, final = emulated(leaves[0], leaves[1], tuple(leaves[2:]), SRCConstants())
        results.append(torch.autograd.grad(spikes.square().sum() + final[0].sum(), leaves))
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_emulated_non_finite_input_stays_in_its_neuron(emu, bad):
    u = torch.randn(12, 2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    u[4, 1, 3] = bad
    state = tuple(torch.zeros(2, 5, dtype=torch.float64) for _ in range(3))
    bias = torch.full((5,), -5.0, dtype=torch.float64)
    spikes, (i_n, _, _) = emulated(u, bias, state, SRCConstants())
    ref, _ = src_recurrence_reference(u, bias, state, SRCConstants())
    assert torch.equal(torch.isnan(spikes), torch.isnan(ref))
    if bad != bad:
        assert torch.isnan(spikes[4:, 1, 3]).all() and torch.isnan(i_n[1, 3])
    clean = torch.ones_like(spikes, dtype=torch.bool)
    clean[:, 1, 3] = False
    assert torch.allclose(spikes[clean], ref[clean], atol=1e-12)


def test_emulated_long_sequence(emu):
    """T = 20,000 steps: the chunked backward walks all of it. In float64 both backends run the
    same math, so they agree closely; in float32 an ulp can move a spike by a step somewhere
    in 20,000, so there only finiteness and the spike count are compared."""
    T, B, H = 20_000, 1, 7
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, None)):
        u64, b64, s64 = make_inputs(T, B, H, SRCConstants(), dtype, seed=4)
        results = []
        for fn in (emulated, src_recurrence_fused):
            leaves = [t.to(dtype).requires_grad_() for t in (u64, b64) + s64]
            spikes, _ = fn(leaves[0], leaves[1], tuple(leaves[2:]), SRCConstants())
            grads = torch.autograd.grad(spikes.sum(), leaves[:3])
            assert all(torch.isfinite(g).all() for g in grads)
            results.append((spikes.detach(), grads))
        (spikes, grads), (cpu_spikes, cpu_grads) = results
        count, cpu_count = (spikes > 0.5).sum().item(), (cpu_spikes > 0.5).sum().item()
        assert count > 100 and abs(count - cpu_count) <= 0.01 * cpu_count
        if tol is not None:
            assert rel_err(spikes, cpu_spikes) < tol
            for a, b in zip(grads, cpu_grads):
                assert rel_err(a, b) < tol


@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
def test_emulated_opcheck(emu, detach, st):
    ops = cuda_emulation.ops()
    c = list(constant_args(SRCConstants(), torch.float64))
    u64, b64, s64 = make_inputs(CHECKPOINT_INTERVAL + 5, 2, 3, SRCConstants(), torch.float64, 0)
    args = [t.clone().requires_grad_() for t in (u64, b64) + s64]
    torch.library.opcheck(ops.src_forward.default, args + c + [detach, st, True])
    u, bias, i0, h0, hs0 = (a.detach() for a in args)
    out = ops.src_forward(u, bias, i0, h0, hs0, *c, detach, st, True)
    grads = [torch.randn_like(u)] + [torch.randn_like(i0) for _ in range(3)]
    torch.library.opcheck(
        ops.src_backward.default,
        grads + [u, bias, out[4]] + c + [detach, st, False],
        test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"),
    )


def test_emulated_gradcheck_exact_bptt_float64(emu):
    k = SRCConstants(z=0.2)
    u, b, s = make_inputs(CHECKPOINT_INTERVAL + 3, 2, 3, k, torch.float64, seed=5)
    leaves = tuple(t.clone().requires_grad_() for t in (u, b) + s)

    def fn(u, b, i0, h0, hs0):
        spikes, final = emulated(u, b, (i0, h0, hs0), k, False, False)
        return (spikes,) + final

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


def neuron_slice(t, n0, n1):
    """Neurons n0..n1-1 of a (..., B, H) tensor, as (..., 1, n1 - n0)."""
    flat = t.reshape(t.shape[:-2] + (-1,))
    return flat[..., n0:n1].unsqueeze(-2).clone()


def fill_neurons(t, n0, n1, values):
    t.view(t.shape[:-2] + (-1,))[..., n0:n1] = values.reshape(values.shape[:-2] + (-1,))


@pytest.mark.parametrize("lanes", [2, 1], ids=["two_lanes", "one_lane"])
@pytest.mark.parametrize("case", ["neurons_beyond_2^31", "elements_beyond_2^32"])
def test_emulated_indexing_is_64_bit(emu, monkeypatch, case, lanes):
    """Launches over buffers too large to hold, of which only the first and last blocks' pages
    are ever touched (the emulation runs just those blocks; the rest of each buffer stays
    unbacked memory): the forward with more than 2^31 neurons, and the forward and backward
    with T * N beyond 2^32 elements; with two lanes a thread (H even: the forward and the
    detached backward) and with one (the exact backward). The last blocks' neurons must give
    what the CPU kernels give on them alone."""
    if case == "neurons_beyond_2^31":
        T, B, H, backward = 2, 2**21 + 1, 1024, False
    else:
        T, B, H, backward = 17, 2**18, 1024, True
    if lanes == 1:
        monkeypatch.setenv(LANES_ENV, "1")
    detach = lanes == 2  # the exact backward has one lane
    N = B * H
    threads = emu.threads_per_block
    last = (N // lanes + threads - 1) // threads - 1  # the backward's last block
    last_fwd = (N // lanes + threads - 1) // threads - 1
    # The neurons the last blocks run, the forward's (n0 on) holding the backward's (nb on).
    n0, nb, n1 = last_fwd * threads * lanes, last * threads * lanes, N
    k = SRCConstants()
    c = constant_args(k)
    dt = torch.bfloat16
    small = make_inputs(T, 1, n1 - n0, k, dt, seed=8)  # the last blocks' inputs
    u, i0, h0, hs0 = (torch.empty(shape, dtype=dt) for shape in [(T, B, H)] + [(B, H)] * 3)
    for big, values in zip((u, i0, h0, hs0), (small[0],) + small[2]):
        fill_neurons(big, n0, n1, values.to(dt))
        fill_neurons(big, 0, threads * lanes, values[..., : threads * lanes].to(dt))  # block 0 runs too
    bias = torch.full((H,), -5.0, dtype=dt)
    bias[n0 % H :] = small[1].to(dt)
    ops = cuda_emulation.ops()
    try:
        emu.set_block_subset([0, last_fwd])
        emu.clear_launches()
        spikes, i_n, h_n, hs_n, ck = ops.src_forward(u, bias, i0, h0, hs0, *c, True, True, backward)
        assert emu.launches()[0]["kernel"].endswith(f", {lanes}>")
        assert emu.launches()[0]["grid"] == (last_fwd + 1, 1, 1)
        assert emu.launches()[0]["blocks_run"] == 2
        if backward:
            emu.set_block_subset([0, last])
            g = make_inputs(T, 1, n1 - n0, k, dt, seed=9)
            grad_spikes, gi, gh, ghs = (torch.empty_like(t) for t in (u, i0, h0, hs0))
            for big, values in zip((grad_spikes, gi, gh, ghs), (g[0],) + g[2]):
                fill_neurons(big, n0, n1, values.to(dt))
                fill_neurons(big, 0, threads * lanes, values[..., : threads * lanes].to(dt))
            emu.clear_launches()
            grads = ops.src_backward(grad_spikes, gi, gh, ghs, u, bias, ck, *c, detach, True, False)
            assert emu.launches()[0]["kernel"].endswith(f", {lanes}>" if detach else "false, false>")
    finally:
        emu.set_block_subset([])
    sl = [neuron_slice(t, n0, n1) for t in (u, i0, h0, hs0)]
    b_small = bias[n0 % H :].clone()
    expected = torch.ops.srcext.src_forward(sl[0], b_small, *sl[1:], *c, True, True, backward)
    for a, b in zip((spikes, i_n, h_n, hs_n), expected[:4]):
        assert torch.equal(neuron_slice(a, n0, n1), b) or rel_err(neuron_slice(a, n0, n1), b) < 1e-2
    assert (expected[0] > 0).any()
    if backward:
        gsl = [neuron_slice(t, n0, n1) for t in (grad_spikes, gi, gh, ghs)]
        expected_grads = torch.ops.srcext.src_backward(*gsl, sl[0], b_small, expected[4], *c, detach, True, False)
        got = [neuron_slice(grads[0], nb, n1)] + [neuron_slice(t, nb, n1) for t in grads[2:]]
        want = [expected_grads[0]] + list(expected_grads[2:])
        for a, b in zip(got, want):
            assert rel_err(a, b[..., nb - n0 :]) < 3e-2


@pytest.mark.parametrize("backend", ["cpu", "cuda_emulation"])
def test_float16_gradients_are_the_float32_math_rounded(emu, backend):
    """float16 storage, float32 math: every gradient is the float32-storage gradient rounded
    once to float16, so it overflows to inf exactly where the float32 value exceeds 65504 and
    nowhere else (nothing overflows inside). Exact BPTT through the bistable cell grows with T;
    at T = 400 here one drive gradient is ~1e5. That inf is float16's answer, and what
    torch.amp.GradScaler expects to see (it skips the step and lowers the scale); docs/guide.md
    recommends bfloat16 for exact BPTT."""
    fn = src_recurrence_fused if backend == "cpu" else emulated
    k = SRCConstants()
    u64, b64, s64 = make_inputs(400, 1, 33, k, torch.float16, seed=400)
    grads = {}
    for dtype in (torch.float16, torch.float32):
        leaves = [t.to(dtype).requires_grad_() for t in (u64, b64) + s64]
        spikes, final = fn(leaves[0], leaves[1], tuple(leaves[2:]), k, False, True)
        grads[dtype] = torch.autograd.grad(spikes.sum() + final[2].sum(), leaves)
    overflowed = 0
    for g16, g32 in zip(grads[torch.float16], grads[torch.float32]):
        assert torch.equal(g16, g32.half())
        assert torch.equal(torch.isinf(g16), g32.abs() > 65504)
        overflowed += int(torch.isinf(g16).sum())
    assert overflowed > 0  # the case does reach the float16 limit


def test_grad_scaler_recovers_from_float16_overflow():
    """Exact BPTT in float16 autocast under torch.amp.GradScaler: the overflowing step is
    skipped and the scale lowered until the gradients fit, after which steps go through."""
    from srcext import SRC

    torch.manual_seed(0)
    model = SRC(8, 33, backend="fused", detach_recurrent=False, weight_scale=6.0)
    x = (torch.rand(400, 2, 8) < 0.3).float()
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    scales, finite = [], []
    for _ in range(40):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            out, _ = model(x)
        assert out.dtype == torch.float16
        scaler.scale(out.float().mean()).backward()
        finite.append(all(torch.isfinite(p.grad).all() for p in model.parameters()))
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        if finite[-1]:
            break
    assert not finite[0] and finite[-1]
    assert scales[-1] < 2.0**16


# ---- variable lengths (tests/test_lengths.py's oracle: each sample run alone) ----------------


@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("case", LENGTH_CASES, ids=LENGTH_CASE_IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_emulated_lengths_match_each_sample_alone(emu, dtype, case, detach, st):
    outs, grads = check_against_alone(emulated, case, SRCConstants(), dtype, detach, st)
    if case is LENGTH_CASES[0] and dtype == torch.float64:
        assert (outs[0] > 0).any() and all(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
def test_emulated_lengths_half_storage(emu, dtype):
    check_against_alone(emulated, (12, 4, 40, [12, 0, 5, 7]), SRCConstants(), dtype, True, True)


def test_emulated_lengths_agree_with_cpu_op(emu):
    """Same lengths, same inputs: the emulated CUDA kernels and the CPU kernels agree, and
    full lengths give exactly the no-lengths result."""
    T, B, H = 2 * CHECKPOINT_INTERVAL + 3, 5, 77
    u64, b64, s64 = make_inputs(T, B, H, SRCConstants(), torch.float64, seed=6)
    lengths = torch.tensor([T, 0, 1, CHECKPOINT_INTERVAL, 20])
    emu_out = emulated(u64, b64, s64, SRCConstants(), lengths=lengths)
    cpu_out = src_recurrence_fused(u64, b64, s64, SRCConstants(), lengths=lengths)
    for a, b in zip((emu_out[0],) + emu_out[1], (cpu_out[0],) + cpu_out[1]):
        assert rel_err(a, b) < 1e-12
    full = emulated(u64, b64, s64, SRCConstants(), lengths=torch.full((B,), T))
    plain = emulated(u64, b64, s64, SRCConstants())
    for a, b in zip((full[0],) + full[1], (plain[0],) + plain[1]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("layout", ["scalar", "over_T", "transposed", "strided"])
def test_emulated_backward_reads_any_upstream_layout(emu, layout):
    """The CUDA backward reads grad_spikes through its strides: every layout gives bitwise the
    gradients of its contiguous copy."""
    T, B, H = CHECKPOINT_INTERVAL + 5, 3, 70
    k = SRCConstants()
    u, b, s = make_inputs(T, B, H, k, torch.float32, seed=4)
    u, b, s = u.float(), b.float(), tuple(x.float() for x in s)
    c = constant_args(k)
    ops = cuda_emulation.ops()
    out = ops.src_forward(u, b, *s, *c, True, True, True)
    strided, contiguous = upstream_layouts(T, B, H, torch.float32)[layout]
    zeros = [torch.zeros(B, H) for _ in range(3)]
    expected = ops.src_backward(contiguous, *zeros, u, b, out[4], *c, False, False, False)
    got = ops.src_backward(strided, *zeros, u, b, out[4], *c, False, False, False)
    for a, e in zip(got, expected):
        assert torch.equal(a, e)


# The device computes exp2, 1/x and (bfloat16 storage) tanh with the special-function unit's
# approximate instructions (src_math.h), which the emulation runs correctly rounded. Its error
# model (tests/emulation/cuda_runtime.h) can put every such result at the instruction's
# documented error bound instead: +1 / -1 all with that sign, 2 with a sign hashed from the
# value. The emulation's approximations otherwise differ from the device's by up to that bound.
@pytest.mark.parametrize("mode", [1, -1, 2], ids=["plus", "minus", "hashed"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=["f32", "bf16", "f16"])
def test_tolerances_hold_at_the_approximations_error_bound(emu, dtype, mode):
    emu.set_approx_error(mode)
    try:
        for detach, st in FLAGS:
            if dtype == torch.float32:
                assert_matches_reference(
                    dtype,
                    (2 * CHECKPOINT_INTERVAL + 1, 3, 97),
                    random_constants(4),
                    detach,
                    st,
                    device="cpu",
                    fused=emulated,
                )
                continue
            (outs, grads), (ref_outs, ref_grads) = run_both(
                12, 3, 40, SRCConstants(), dtype, detach, st, fused=emulated
            )
            for label, a, b in zip(("spikes", "i_n", "h_n", "hs_n"), outs, ref_outs):
                assert_close(a, b, tolerance(dtype, True), label)
            for label, a, b in zip(("u", "bias", "i0"), grads, ref_grads):
                assert_close(a, b, tolerance(dtype, detach), f"grad {label}")
    finally:
        emu.set_approx_error(0)


def test_error_model_moves_results_by_the_bound(emu):
    """The error model is live (a test of the test above): results move, by about the bound."""
    u64, b64, s64 = make_inputs(20, 2, 30, SRCConstants(), torch.float32, seed=6)
    args = (u64.float(), b64.float(), tuple(s.float() for s in s64), SRCConstants())
    with torch.no_grad():
        exact = emulated(*args)[0]
        emu.set_approx_error(1)
        try:
            moved = emulated(*args)[0]
        finally:
            emu.set_approx_error(0)
    assert 0 < rel_err(moved, exact) < 1e-4
    with pytest.raises(RuntimeError, match="mode"):
        emu.set_approx_error(3)
