"""The event-driven input projection (srcext.events, csrc/src_events*): the ops against dense
float64 matrix products on random inputs of every density, their gradients (gradcheck), their
registration (opcheck), the determinism of the weight gradient, bad input; and the SRC layer
with input_projection dense / sparse / auto, and with sparse (event) input."""

import warnings

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import srcext
from srcext.events import as_events
from srcext.projection import input_projection

from events_helpers import DENSITIES, DTYPE_IDS, DTYPES, check_events, check_matmul_and_weight_grad, ops_of, spikes
from helpers import assert_close, over_devices, requires_cuda, requires_fused


@pytest.fixture(autouse=True)
def events_at_every_size(monkeypatch):
    """These tests choose between events and the GEMM on small inputs: "auto" decides by
    density here at every size (its small-input shortcut has a test of its own)."""
    monkeypatch.setattr(srcext.projection, "SMALL_INPUT", 0)


pytestmark = requires_fused


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@over_devices
def test_events_are_the_csr(device, dtype, density):
    check_events(ops_of(), 57, 100, density, dtype, device=device)


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (1, 1), (40, 17), (5, 33)])
@over_devices
def test_events_edge_shapes(device, shape):
    for density in (0.0, 0.5, 1.0):
        check_events(ops_of(), *shape, density, torch.float32, device=device)
        check_matmul_and_weight_grad(ops_of(), *shape, 7, density, torch.float32, device=device)


def test_events_zero_sign_and_nan():
    s = torch.tensor([[0.0, -0.0, 1.0, float("nan"), -2.0]])
    row_ptr, col, val = torch.ops.srcext.src_events(s)
    assert col.tolist() == [2, 3, 4] and row_ptr.tolist() == [0, 3]  # -0 is zero, NaN is not


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@over_devices
def test_matmul_and_weight_grad_match_dense(device, dtype, density):
    # H = 150: two full tiles of 64 columns and a partial one.
    check_matmul_and_weight_grad(ops_of(), 70, 45, 150, density, dtype, seed=3, device=device)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("density", [0.01, 0.2])
@pytest.mark.parametrize("device", [pytest.param("cuda", marks=requires_cuda)])
def test_ops_at_training_size(device, dtype, density):
    """A layer-sized projection on the GPU (R = T x B = 16,000 rows, F = 700, H = 1,024): many
    blocks of rows and every column tile, against float64 matrix products."""
    check_matmul_and_weight_grad(ops_of(), 16000, 700, 1024, density, dtype, seed=11, device=device)


def test_one_active_input():
    s = torch.zeros(30, 50)
    s[17, 23] = 0.75
    w = torch.randn(9, 50)
    u, count = torch.ops.srcext.src_projection(s, w, 1.0)
    assert count.item() == 1
    expected = torch.zeros(30, 9)
    expected[17] = 0.75 * w[:, 23]
    assert torch.equal(u, expected)
    g = torch.randn(30, 9)
    gw = torch.ops.srcext.src_projection_weight_grad(g, s, 1.0)
    expected_gw = torch.zeros(9, 50)
    expected_gw[:, 23] = 0.75 * g[17]
    assert torch.equal(gw, expected_gw)


@over_devices
def test_weight_grad_is_bitwise_reproducible(device):
    """Same bits run to run and whatever the number of threads: each element of the weight
    gradient is summed by one thread in one order (on the GPU too: no atomics)."""
    s = spikes(2000, 300, 0.05, seed=5).to(device)
    grad_u = torch.randn(2000, 200, generator=torch.Generator().manual_seed(6)).to(device)
    events = torch.ops.srcext.src_events(s)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (threads, 1, threads):
            torch.set_num_threads(n)
            results.append(torch.ops.srcext.src_event_weight_grad(*events, grad_u, 300))
            results.append(torch.ops.srcext.src_projection_weight_grad(grad_u, s, 1.0))
    finally:
        torch.set_num_threads(threads)
    for r in results[1:]:
        assert torch.equal(r, results[0])


@over_devices
def test_gradcheck_float64(device):
    s = spikes(12, 9, 0.3, torch.float64, seed=7).to(device).requires_grad_()
    w = torch.randn(5, 9, dtype=torch.float64).to(device).requires_grad_()
    for max_density in (0.0, 1.0):
        torch.autograd.gradcheck(lambda s, w, m=max_density: torch.ops.srcext.src_projection(s, w, m)[0], (s, w))
    row_ptr, col, val = torch.ops.srcext.src_events(s.detach())
    val = val.clone().requires_grad_()
    torch.autograd.gradcheck(lambda v, w: torch.ops.srcext.src_event_matmul(row_ptr, col, v, w), (val, w))


@over_devices
def test_opcheck(device):
    s = spikes(20, 30, 0.2, seed=8).to(device)
    w = torch.randn(7, 30).to(device).requires_grad_()
    events = torch.ops.srcext.src_events(s)
    grad_u = torch.randn(20, 7).to(device)
    cases = [
        (torch.ops.srcext.src_events.default, (s,)),
        (torch.ops.srcext.src_event_matmul.default, (*events, w)),
        (torch.ops.srcext.src_event_weight_grad.default, (*events, grad_u, 30)),
        (torch.ops.srcext.src_projection.default, (s.clone().requires_grad_(), w, 1.0)),
        (torch.ops.srcext.src_projection.default, (s, w, 0.0)),
        (torch.ops.srcext.src_projection_weight_grad.default, (grad_u, s, 1.0)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_bad_input():
    s = spikes(4, 6, 0.5)
    w = torch.randn(3, 6)
    events = torch.ops.srcext.src_events(s)
    with pytest.raises(ValueError, match="2-D"):
        torch.ops.srcext.src_events(s.view(2, 2, 6))
    with pytest.raises(TypeError, match="floating point"):
        torch.ops.srcext.src_events(s.long())
    with pytest.raises(ValueError, match="does not match"):
        torch.ops.srcext.src_projection(s, torch.randn(3, 5), 1.0)
    with pytest.raises(TypeError, match="dtype"):
        torch.ops.srcext.src_projection(s, w.double(), 1.0)
    with pytest.raises(ValueError, match="max_density"):
        torch.ops.srcext.src_projection(s, w, float("nan"))
    with pytest.raises(ValueError, match="col must lie"):
        torch.ops.srcext.src_event_matmul(*events, torch.randn(3, 2))
    with pytest.raises(TypeError, match="int64"):
        torch.ops.srcext.src_event_matmul(events[0].int(), events[1], events[2], w)
    with pytest.raises(ValueError, match="row_ptr"):
        torch.ops.srcext.src_event_matmul(events[0] + 1, events[1], events[2], w)
    with pytest.raises(ValueError, match="one length"):
        torch.ops.srcext.src_event_matmul(events[0], events[1][:-1], events[2], w)
    with pytest.raises(ValueError, match="R = 4"):
        torch.ops.srcext.src_event_weight_grad(*events, torch.randn(5, 3), 6)
    with pytest.raises(TypeError, match="dtype"):
        torch.ops.srcext.src_event_weight_grad(*events, torch.randn(4, 3).double(), 6)
    with pytest.raises(TypeError, match="weight has dtype"):
        torch.ops.srcext.src_event_matmul(*events, w.half())
    with pytest.raises(ValueError, match="num_inputs"):
        torch.ops.srcext.src_event_weight_grad(*events, torch.randn(4, 3), -1)


# ---- the layer ----------------------------------------------------------------------------------


def make_layer(mode, seed=0, dtype=torch.float32, **kw):
    torch.manual_seed(seed)
    # Large weights, so that every layer fires and the comparison sees spikes, not zeros.
    return srcext.SRC(40, 24, input_projection=mode, weight_scale=12.0, dtype=dtype, **kw)


def run_layer(model, x, forward=None, **kw):
    """model's output, state and parameter gradients; `forward` (e.g. the compiled model) runs it."""
    out, state = (model if forward is None else forward)(x, **kw)
    g = torch.Generator().manual_seed(99)
    weights = torch.randn(out.shape, generator=g).to(out.device, out.dtype)
    (out.float() * weights.float()).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return out.detach(), state, grads


def layer_input(T, B, F, density, dtype=torch.float32, seed=1):
    return spikes(T * B, F, density, dtype, seed, analog=False).view(T, B, F)


def compare_modes(x, tol, modes=("sparse", "auto"), layer_kw=None, call_kw=None, dtype=None, device="cpu"):
    layer_kw, call_kw = layer_kw or {}, call_kw or {}
    dtype = dtype or torch.float32
    x = x.to(device)
    if "state" in call_kw:
        call_kw = {**call_kw, "state": tuple(s.to(device) for s in call_kw["state"])}
    ref_model = make_layer("dense", dtype=dtype, **layer_kw).to(device)
    ref_out, ref_state, ref_grads = run_layer(ref_model, x, **call_kw)
    assert ref_out.abs().sum() > 0, "the test layer must fire"
    for mode in modes:
        out, state, grads = run_layer(make_layer(mode, dtype=dtype, **layer_kw).to(device), x, **call_kw)
        assert_close(out, ref_out, tol, f"{mode} output")
        for a, b in zip(state, ref_state):
            assert_close(a, b, tol, f"{mode} state")
        for name in ref_grads:
            assert_close(grads[name], ref_grads[name], tol, f"{mode} grad {name}")


@pytest.mark.parametrize("density", [0.0, 0.03, 0.3, 1.0])
@over_devices
def test_layer_modes_agree(device, density):
    x = layer_input(30, 4, 40, density)
    if density == 0.0:
        for mode in ("dense", "sparse", "auto"):
            out, _, grads = run_layer(make_layer(mode).to(device), x.to(device))
        return
    compare_modes(x, 1e-5, layer_kw=dict(num_layers=2), device=device)


@over_devices
def test_layer_modes_agree_float64(device):
    x = layer_input(25, 3, 40, 0.05, torch.float64)
    compare_modes(x, 1e-12, layer_kw=dict(num_layers=2), dtype=torch.float64, device=device)


@pytest.mark.parametrize("option", ["batch_first", "bidirectional", "lengths", "packed", "state"])
@over_devices
def test_layer_modes_agree_with_options(device, option):
    T, B = 30, 4
    x = layer_input(T, B, 40, 0.05)
    layer_kw, call_kw = dict(num_layers=2), {}
    lengths = torch.tensor([30, 11, 25, 1])
    if option == "batch_first":
        layer_kw["batch_first"] = True
        x = x.transpose(0, 1).contiguous()
    elif option == "bidirectional":
        layer_kw["bidirectional"] = True
        call_kw["lengths"] = lengths
    elif option == "lengths":
        call_kw["lengths"] = lengths
    elif option == "packed":
        x = pack_padded_sequence(x.to(device), lengths, enforce_sorted=False)
    elif option == "state":
        g = torch.Generator().manual_seed(4)
        call_kw["state"] = tuple(torch.rand(2, B, 24, generator=g) for _ in range(3))
    if option == "packed":
        outs = []
        for mode in ("dense", "sparse"):
            out, _ = make_layer(mode, **layer_kw).to(device)(x)
            outs.append(out.data)
        assert outs[0].device.type == device and outs[0].abs().sum() > 0
        assert_close(outs[1], outs[0], 1e-5, "packed output")
        return
    compare_modes(x, 1e-5, layer_kw=layer_kw, call_kw=call_kw, device=device)


def test_layer_modes_agree_under_bf16_autocast():
    """The projection under CPU autocast: u in bfloat16 on every path, as the GEMM gives."""
    x = layer_input(30, 4, 40, 0.05)
    results = {}
    for mode in ("dense", "sparse", "auto"):
        model = make_layer(mode, num_layers=2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = model(x)
        assert out.dtype == torch.bfloat16
        out.float().sum().backward()
        results[mode] = (out.float(), model.weight_l0.grad.clone(), model.weight_l1.grad.clone())
    for mode in ("sparse", "auto"):
        for a, b in zip(results[mode], results["dense"]):
            assert_close(a, b, 5e-2, f"{mode} under autocast")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
@over_devices
def test_layer_modes_agree_half_storage(device, dtype):
    x = layer_input(30, 4, 40, 0.05, dtype)
    compare_modes(x, 5e-2, modes=("sparse",), dtype=dtype, device=device)


@pytest.mark.parametrize("batch_first", [False, True])
def test_sparse_tensor_and_event_input(batch_first):
    T, B = 30, 4
    x = layer_input(T, B, 40, 0.05)
    if batch_first:
        x = x.transpose(0, 1).contiguous()
    kw = dict(num_layers=2, batch_first=batch_first)
    ref_out, ref_state, ref_grads = run_layer(make_layer("dense", **kw), x)
    inputs = [x.to_sparse(), as_events(x.to_sparse(), batch_first)]
    for inp in inputs:
        out, state, grads = run_layer(make_layer("auto", **kw), inp)
        assert_close(out, ref_out, 1e-5, "output from events")
        for name in ref_grads:
            assert_close(grads[name], ref_grads[name], 1e-5, f"grad {name} from events")


def test_event_input_bidirectional_and_lengths():
    x = layer_input(20, 3, 40, 0.05)
    lengths = torch.tensor([20, 7, 13])
    kw = dict(bidirectional=True)
    ref = make_layer("dense", **kw)(x, lengths=lengths)[0]
    out = make_layer("sparse", **kw)(x.to_sparse(), lengths=lengths)[0]
    assert_close(out, ref, 1e-5, "bidirectional from events")


def test_batched_csr_input():
    # A batched CSR tensor needs as many events at every step: one spike per (t, b).
    T, B, F = 10, 3, 40
    x = torch.zeros(T, B, F)
    idx = torch.randint(0, F, (T, B), generator=torch.Generator().manual_seed(2))
    x.scatter_(2, idx.unsqueeze(2), 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        csr = x.to_sparse_csr()
    ref = make_layer("dense")(x)[0]
    assert_close(make_layer("auto")(csr)[0], ref, 1e-5, "from batched CSR")


def block_sparse(D0, D1, F, block, seed=2):
    """Analog events in (block) tiles of each (D1, F) matrix, as many tiles in every one of
    the D0 matrices: what torch's batched compressed layouts (batched over D0) can hold."""
    g = torch.Generator().manual_seed(seed)
    rows, cols = D1 // block[0], F // block[1]
    pick = torch.rand(D0, rows * cols, generator=g).argsort(dim=1)[:, : max(1, rows * cols // 8)]
    mask = torch.zeros(D0, rows * cols).scatter_(1, pick, 1.0).view(D0, rows, cols)
    mask = mask.repeat_interleave(block[0], 1).repeat_interleave(block[1], 2)
    return mask * (torch.rand(D0, D1, F, generator=g) + 0.5)


# Every way torch holds a sparse (T, B, F) (or (B, T, F)), with the tile its events come in:
# compressed layouts are batched over the first dimension, hybrid ones keep dense value
# blocks (whose zeros are not events).
SPARSE_FORMS = {
    "coo": ((1, 1), lambda x: x.to_sparse()),
    "coo_hybrid_1": ((1, 1), lambda x: x.to_sparse(2)),
    "coo_hybrid_2": ((1, 1), lambda x: x.to_sparse(1)),
    "csr": ((1, 1), lambda x: x.to_sparse_csr()),
    "csr_hybrid": ((1, 1), lambda x: x.to_sparse_csr(1)),
    "csc": ((1, 1), lambda x: x.to_sparse_csc()),
    "bsr": ((1, 8), lambda x: x.to_sparse_bsr((1, 8))),
    "bsc": ((2, 4), lambda x: x.to_sparse_bsc((2, 4))),
}


@pytest.mark.parametrize("form", list(SPARSE_FORMS))
@pytest.mark.parametrize("batch_first", [False, True])
def test_every_sparse_layout(form, batch_first):
    T, B = 12, 2
    block, to_form = SPARSE_FORMS[form]
    x = block_sparse(B, T, 40, block) if batch_first else block_sparse(T, B, 40, block)
    kw = dict(num_layers=2, batch_first=batch_first)
    ref_out, ref_state, ref_grads = run_layer(make_layer("dense", **kw), x)
    assert ref_out.abs().sum() > 0, "the test layer must fire"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "sparse CSR tensor support is in beta"
        sparse = to_form(x)
        out, state, grads = run_layer(make_layer("sparse", **kw), sparse)
    assert_close(out, ref_out, 1e-5, f"output from {form}")
    assert_close(state.h, ref_state.h, 1e-5, f"state from {form}")
    for name in ref_grads:
        assert_close(grads[name], ref_grads[name], 1e-5, f"grad {name} from {form}")


def test_hybrid_blocks_drop_their_zeros():
    x = layer_input(6, 3, 40, 0.1)
    e = as_events(x.to_sparse(1))  # one dense value block per step, mostly zeros
    assert e.col.numel() == x.count_nonzero() and torch.equal(e.to_dense(), x)


def test_stacked_frames_flatten_their_features():
    """tonic's ToSparseTensor gives each recording's frames as a sparse (T, C, H, W); stacked
    they are (B, T, C, H, W), which torch cannot reshape while sparse: the layer flattens the
    feature dimensions as Tensor.flatten(2) would."""
    frames = layer_input(9, 3, 40, 0.1).view(9, 3, 2, 4, 5)  # (T, B, C, H, W)
    stacked = torch.stack([frames[:, b].to_sparse() for b in range(3)])  # (B, T, C, H, W)
    assert stacked.layout == torch.sparse_coo
    ref = run_layer(make_layer("dense", batch_first=True), frames.transpose(0, 1).flatten(2))
    got = run_layer(make_layer("sparse", batch_first=True), stacked)
    assert_close(got[0], ref[0], 1e-5, "output from stacked frames")
    for name in ref[2]:
        assert_close(got[2][name], ref[2][name], 1e-5, f"grad {name} from stacked frames")
    assert as_events(stacked, batch_first=True).shape == (9, 3, 40)


def test_tonic_sparse_frames_go_in_as_they_are():
    """A tonic user's N-MNIST batch: ToSparseTensor frames (T, 2, 34, 34) of each recording,
    stacked to (B, T, 2, 34, 34) (torch cannot flatten them while sparse), against the same
    recordings through tonic's dense ToFrame, flattened as usual."""
    tonic = pytest.importorskip("tonic")
    rng = np.random.default_rng(0)
    sensor = tonic.datasets.NMNIST.sensor_size  # (34, 34, 2)
    dtype = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int16)])
    recordings = []
    for _ in range(3):
        ev = np.zeros(400, dtype)
        ev["x"], ev["y"] = rng.integers(0, 34, 400), rng.integers(0, 34, 400)
        ev["t"], ev["p"] = np.sort(rng.integers(0, 100_000, 400)), rng.integers(0, 2, 400)
        recordings.append(ev)
    sparse = tonic.transforms.ToSparseTensor(sensor_size=sensor, n_time_bins=12)
    dense = tonic.transforms.ToFrame(sensor_size=sensor, n_time_bins=12)
    frames = torch.stack([sparse(ev) for ev in recordings]).float()
    flat = torch.stack([torch.from_numpy(dense(ev)) for ev in recordings]).float().flatten(2)
    assert frames.layout == torch.sparse_coo and frames.shape == (3, 12, 2, 34, 34)
    torch.manual_seed(0)
    model = srcext.SRC(2 * 34 * 34, 16, batch_first=True, weight_scale=8.0)
    ref, ref_state = model(flat)
    out, state = model(frames)
    assert ref.abs().sum() > 0, "the layer must fire"
    assert_close(out, ref, 1e-5, "tonic sparse frames")
    assert_close(state.h, ref_state.h, 1e-5, "tonic sparse frames' state")


@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_sparse_input(batch_first):
    x = layer_input(15, 1, 40, 0.1)[:, 0]  # (T, F): one sequence, whatever batch_first says
    ref_out, ref_state, ref_grads = run_layer(make_layer("dense", batch_first=batch_first), x)
    out, state, grads = run_layer(make_layer("sparse", batch_first=batch_first), x.to_sparse())
    assert out.shape == ref_out.shape == (15, 24) and state.h.shape == ref_state.h.shape == (1, 24)
    assert_close(out, ref_out, 1e-5, "unbatched output from events")
    for name in ref_grads:
        assert_close(grads[name], ref_grads[name], 1e-5, f"grad {name} unbatched from events")


def test_layer_event_input_errors():
    model = make_layer("auto")
    x = layer_input(10, 2, 40, 0.1)
    with pytest.raises(ValueError, match="input_size 40"):
        model(layer_input(10, 2, 39, 0.1).to_sparse())
    with pytest.raises(ValueError, match=r"input_size 40 features, got 39 .*shape \(10, 3, 3, 13\)"):
        model(torch.ones(10, 3, 3, 13).to_sparse())
    with pytest.raises(ValueError, match="a sparse input must be"):
        model(x[0, 0].to_sparse())
    with pytest.raises(ValueError, match="lengths needs batched input"):
        model(x[:, 0].to_sparse(), lengths=torch.tensor([4]))
    with pytest.raises(TypeError, match="dtype"):
        model(x.double().to_sparse())
    with pytest.raises(ValueError, match="input_projection"):
        srcext.SRC(4, 4, input_projection="events")


@over_devices
def test_events_to(device):
    e = as_events(layer_input(6, 5, 40, 0.2).to_sparse())
    for moved in (e.to(device), e.to(device, torch.float64), e.to(torch.device(device), dtype=torch.float64)):
        assert moved.device.type == device and moved.row_ptr.device == moved.col.device == moved.val.device
        assert moved.row_ptr.dtype == moved.col.dtype == torch.int64
        assert torch.equal(moved.to_dense().cpu().float(), e.to_dense())
    assert e.to(torch.float64).dtype == torch.float64 and e.to(device, torch.float64).dtype == torch.float64
    with pytest.raises(TypeError):
        e.to("cpu", "not a dtype")


def test_events_round_trip():
    x = layer_input(6, 5, 40, 0.2)
    e = as_events(x.to_sparse())
    assert e.shape == x.shape and torch.equal(e.to_dense(), x)
    assert abs(e.density() - x.ne(0).float().mean().item()) < 1e-9
    row_ptr, col, val = torch.ops.srcext.src_events(x.view(30, 40))
    assert torch.equal(e.row_ptr, row_ptr) and torch.equal(e.col, col) and torch.equal(e.val, val)


@pytest.mark.parametrize("mode", ["sparse", "auto"])
def test_layer_compiles_fullgraph(mode):
    x = layer_input(20, 3, 40, 0.05)
    ref_model = make_layer("dense", num_layers=2)
    ref = ref_model(x)[0]
    model = make_layer(mode, num_layers=2)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)[0]
    out.sum().backward()
    ref.sum().backward()
    assert_close(out, ref, 1e-5, "compiled output")
    assert_close(model.weight_l0.grad, ref_model.weight_l0.grad, 1e-5, "compiled grad")


@pytest.mark.parametrize("form", ["coo", "events"])
def test_event_input_under_compile(form):
    """torch.compile does not trace sparse tensors: an event input is read outside the graph
    (one graph break) and the rest compiles; fullgraph=True says why it cannot."""
    x = layer_input(20, 3, 40, 0.05)
    ref_model = make_layer("dense", num_layers=2)
    ref_out, _, ref_grads = run_layer(ref_model, x)
    torch._dynamo.reset()
    model = make_layer("sparse", num_layers=2)
    inp = x.to_sparse() if form == "coo" else as_events(x.to_sparse())
    out, _, grads = run_layer(model, inp, forward=torch.compile(model, backend="aot_eager"))
    assert_close(out, ref_out, 1e-5, f"compiled output from {form}")
    for name in ref_grads:
        assert_close(grads[name], ref_grads[name], 1e-5, f"compiled grad {name} from {form}")
    torch._dynamo.reset()
    with pytest.raises(Exception, match="sparse"):
        torch.compile(model, fullgraph=True, backend="aot_eager")(inp)


def test_src_events_compiles_with_dynamic_size():
    def f(s, w):
        row_ptr, col, val = torch.ops.srcext.src_events(s)
        return torch.ops.srcext.src_event_matmul(row_ptr, col, val, w)

    s = spikes(30, 40, 0.1)
    w = torch.randn(8, 40)
    out = torch.compile(f, fullgraph=True, backend="aot_eager")(s, w)
    assert_close(out, s @ w.t(), 1e-5, "compiled events")


def test_rate_encoder_events_are_its_spikes():
    from srcext.data import RateEncoder

    g = torch.Generator().manual_seed(5)
    images = (torch.rand(6, 28, 28, generator=g) * 255 * (torch.rand(6, 28, 28, generator=g) < 0.3)).to(torch.uint8)
    encoder = RateEncoder(gain=0.5, silent_steps=3, input_steps=12)
    for dtype in (torch.float32, torch.bfloat16):
        dense = encoder(images, torch.Generator().manual_seed(1), dtype)
        events = encoder.events(images, torch.Generator().manual_seed(1), dtype)
        assert events.shape == dense.shape and events.dtype == dtype
        assert torch.equal(events.to_dense(), dense)
        assert events.col.numel() == int(dense.ne(0).sum()) > 0
    # The layer takes them as they are, with the result of the dense spikes.
    dense = encoder(images, torch.Generator().manual_seed(2))
    events = encoder.events(images, torch.Generator().manual_seed(2))
    outs = []
    for mode, x in (("dense", dense), ("auto", events)):
        torch.manual_seed(0)
        outs.append(srcext.SRC(784, 16, weight_scale=12.0, input_projection=mode)(x)[0])
    assert outs[0].abs().sum() > 0
    assert_close(outs[1], outs[0], 1e-5, "SRC on the encoder's events")


def test_auto_takes_the_gemm_on_small_inputs(monkeypatch):
    """At most SMALL_INPUT elements "auto" runs the GEMM whatever the density (no count, no
    events: a streaming step's host cost); above, the events where sparse enough."""
    from srcext.projection import input_projection

    monkeypatch.setattr(srcext.projection, "SMALL_INPUT", 20 * 10 * 40)
    w = torch.randn(30, 40)
    w[:, 0] = float("inf")
    x = spikes(200, 40, 0.01, seed=3).view(20, 10, 40)
    x[..., 0] = 0
    assert torch.isnan(input_projection(x, w, "auto")).all()  # the GEMM's 0 * inf
    assert torch.isfinite(input_projection(torch.cat([x, x]), w, "auto")).all()  # the events


def test_auto_follows_the_crossover():
    """ "auto" takes the event path below the crossover and the GEMM above it. Told apart by an
    inf weight on an input that is always 0: the GEMM's 0 * inf is NaN, the events skip it."""
    from srcext.projection import crossover, input_projection

    w = torch.randn(30, 40)
    w[:, 0] = float("inf")
    c = crossover("cpu", torch.float32)
    assert 0 < c < 1
    for density, expect_events in ((c / 3, True), (min(1.0, 3 * c), False)):
        x = spikes(200, 40, density, seed=3).view(20, 10, 40)
        x[..., 0] = 0
        u = input_projection(x, w, "auto")
        assert torch.isfinite(u).all() == expect_events
        assert torch.isnan(input_projection(x, w, "dense")).all()
        assert torch.isfinite(input_projection(x, w, "sparse")).all()


@pytest.mark.parametrize(
    "density, mode, saves",
    [(0.03, "sparse", "events"), (0.03, "auto", "events"), (1.0, "sparse", "s"), (1.0, "auto", "s")],
)
def test_eager_projection_keeps_the_events_for_the_weight_gradient(density, mode, saves):
    # Outside torch.compile the events of s are built once: kept for the weight gradient when
    # smaller than s (no second pass over s in the backward), else s is (and at 100 % "auto"
    # runs the GEMM, which saves s too). Either way the gradients are the dense ones.
    R, F, H = 120, 40, 24
    s = spikes(R, F, density, seed=4).view(R // 4, 4, F).requires_grad_()
    w = torch.randn(H, F, dtype=torch.float32, requires_grad=True)
    shapes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: shapes.append(tuple(t.shape)) or t, lambda t: t):
        u = input_projection(s, w, mode)
    nnz = int(s.ne(0).sum())
    assert ((R, F) in shapes) == (saves == "s") and ((nnz,) in shapes) == (saves == "events")
    g = torch.randn_like(u)
    grads = torch.autograd.grad(u, (s, w), g)
    s64, w64 = s.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    ref = torch.autograd.grad(torch.nn.functional.linear(s64, w64), (s64, w64), g.double())
    for got, want, name in zip(grads, ref, ("grad_s", "grad_w")):
        assert_close(got, want, 1e-5, name)


def test_event_list_input_follows_the_modes_and_its_crossover(monkeypatch):
    """An input given as events: "sparse" projects from the list, "dense" makes it dense and
    runs the GEMM, "auto" compares the list's density with the event-list crossover (on a CPU
    always the events). Told apart by an inf weight on an input that is always 0."""
    from srcext import events as ev

    w = torch.randn(30, 40)
    w[:, 0] = float("inf")
    x = spikes(200, 40, 0.1, seed=5).view(20, 10, 40)
    x[..., 0] = 0
    e = as_events(x.to_sparse())
    d = e.density()
    assert ev.crossover("cpu", torch.float32, event_list=True) == 1.0
    assert torch.isfinite(ev.input_projection(e, w, "sparse")).all()
    assert torch.isfinite(ev.input_projection(e, w, "auto")).all()
    assert torch.isnan(ev.input_projection(e, w, "dense")).all()
    for c, expect_events in ((d * 1.5, True), (d / 1.5, False), (0.0, False)):
        monkeypatch.setitem(ev.EVENT_LIST_CROSSOVER, ("cpu", torch.float32), c)
        assert torch.isfinite(ev.input_projection(e, w, "auto")).all() == expect_events
    # Either way, the values are the GEMM's (without the inf column).
    w[:, 0] = 0
    want = x @ w.t()
    for mode in ("auto", "dense", "sparse"):
        assert_close(ev.input_projection(e, w, mode), want, 1e-5, f"events, {mode}")
