"""Drop-in behaviour: special values, serialization, determinism, mixed precision, dynamic
shapes and export, long sequences, threads, and property-based fuzzing against the reference."""
import copy
import os
import threading

import torch._dynamo.testing

import pytest
import torch

from srcext import SRC
from srcext.ops import src_recurrence_fused
from srcext.reference import SRCConstants, src_recurrence_reference

from conftest import rel_err, requires_fused

pytestmark = requires_fused


@pytest.mark.parametrize("backend", ["fused", "reference"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_propagates_without_crash(backend, bad):
    """NaN (or an Inf that makes NaN) in the drive of one neuron shows in that neuron's
    outputs from then on, as in the reference; other neurons are untouched."""
    torch.manual_seed(0)
    u = torch.randn(12, 2, 5, dtype=torch.float64)
    u[4, 1, 3] = bad
    state = tuple(torch.zeros(2, 5, dtype=torch.float64) for _ in range(3))
    bias = torch.full((5,), -5.0, dtype=torch.float64)
    run = src_recurrence_fused if backend == "fused" else src_recurrence_reference
    spikes, (i_n, h_n, hs_n) = run(u, bias, state, SRCConstants())
    ref, ref_state = src_recurrence_reference(u, bias, state, SRCConstants())
    assert torch.equal(torch.isnan(spikes), torch.isnan(ref))
    if bad != bad:  # NaN
        assert torch.isnan(spikes[4:, 1, 3]).all() and torch.isnan(i_n[1, 3])
    clean = torch.ones_like(spikes, dtype=torch.bool)
    clean[:, 1, 3] = False
    assert torch.allclose(spikes[clean], ref[clean], atol=1e-12)


def test_state_dict_roundtrip_and_backend_swap(tmp_path):
    torch.manual_seed(0)
    model = SRC(6, 8, 2, backend="fused", r=1.7, detach_recurrent=False)
    x = (torch.rand(9, 3, 6) < 0.5).float()
    expected, _ = model(x)

    other = SRC(6, 8, 2, backend="reference", r=1.7, detach_recurrent=False)
    other.load_state_dict(model.state_dict())
    assert torch.allclose(other(x)[0], expected, atol=1e-5)

    path = tmp_path / "model.pt"
    torch.save(model, path)
    loaded = torch.load(path, weights_only=False)
    assert loaded.constants == model.constants and loaded.backend == "fused"
    assert torch.equal(loaded(x)[0], expected)
    loaded.backend = "reference"  # a model saved with one backend runs on the other
    assert torch.allclose(loaded(x)[0], expected, atol=1e-5)


def test_forward_and_backward_are_bitwise_deterministic():
    torch.manual_seed(0)
    model = SRC(10, 70, 2, backend="fused", weight_scale=5.0)
    x = (torch.rand(40, 6, 10) < 0.4).float()
    runs = []
    for _ in range(3):
        model.zero_grad()
        out, state = model(x)
        (out.sum() + state[1].sum()).backward()
        runs.append([out, *state] + [p.grad.clone() for p in model.parameters()])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)


def test_cpu_autocast_bfloat16():
    """Under CPU autocast the GEMM runs in bfloat16 and so does the recurrence's storage
    (float32 math inside); forward and backward run without dtype errors and stay close to
    the float64 reference."""
    torch.manual_seed(0)
    model = SRC(16, 24, 2, backend="fused", weight_scale=5.0)
    ref = copy.deepcopy(model).double()
    ref.backend = "reference"
    x = (torch.rand(20, 4, 16) < 0.4).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = model(x)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    rout, _ = ref(x.double())
    rout.sum().backward()
    assert rel_err(out.float(), rout) < 0.1
    for g, rp in zip(grads, ref.parameters()):
        cos = torch.nn.functional.cosine_similarity(g.double().flatten(), rp.grad.flatten(), dim=0)
        assert cos > 0.9


def test_compile_dynamic_shapes_no_recompile_per_length():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = SRC(8, 12, backend="fused")
    counter = torch._dynamo.testing.CompileCounter()
    compiled = torch.compile(model, backend=counter, dynamic=True, fullgraph=True)
    for T, B in [(5, 2), (9, 3), (17, 4), (33, 5), (12, 7)]:
        x = torch.rand(T, B, 8)
        out, _ = compiled(x)
        assert torch.allclose(out, model(x)[0])
    assert counter.frame_count <= 2, counter.frame_count


def test_export_inference_model():
    torch.manual_seed(0)
    model = SRC(8, 12, 2, backend="fused").eval()
    x = torch.rand(10, 3, 8)
    with torch.no_grad():
        exported = torch.export.export(model, (x,))
        out = exported.module()(x)[0]
        assert torch.allclose(out, model(x)[0])


def test_long_sequence_memory_and_gradient():
    """T = 100,000 steps with a small B*H: forward and backward run and the memory saved for
    backward stays at 4.75 bytes per neuron-step."""
    T, B, H = 100_000, 2, 8
    torch.manual_seed(0)
    u = (torch.randn(T, B, H) * 0.8).requires_grad_()
    bias = torch.full((H,), -5.0, requires_grad=True)
    state = tuple(torch.zeros(B, H) for _ in range(3))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved.append(t.untyped_storage().nbytes()) or t, lambda t: t):
        spikes, _ = src_recurrence_fused(u, bias, state, SRCConstants())
    assert sum(saved) / (T * B * H) <= 4.8
    spikes.sum().backward()
    assert torch.isfinite(u.grad).all() and (spikes > 0).any()


def test_concurrent_threads_get_correct_results():
    torch.manual_seed(0)
    model = SRC(6, 10, 2, backend="fused", weight_scale=5.0)
    inputs = [(torch.rand(30, 3, 6) < 0.5).float() for _ in range(4)]
    expected = [model(x)[0] for x in inputs]
    results, errors = [None] * 4, []

    def work(k):
        try:
            for _ in range(20):
                out, _ = model(inputs[k])
                out.sum().backward()
            results[k] = model(inputs[k])[0]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for a, b in zip(results, expected):
        assert torch.equal(a, b)


def test_repeated_calls_keep_resident_memory_flat():
    """10,000 forward/backward calls: resident memory does not grow."""
    def rss_kb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc")
    u = torch.randn(20, 4, 16, requires_grad=True)
    bias = torch.full((16,), -5.0, requires_grad=True)
    state = tuple(torch.zeros(4, 16) for _ in range(3))
    for _ in range(500):  # warm-up: allocator pools reach their steady size
        src_recurrence_fused(u, bias, state, SRCConstants())[0].sum().backward()
    before = rss_kb()
    for _ in range(10_000):
        src_recurrence_fused(u, bias, state, SRCConstants())[0].sum().backward()
    assert rss_kb() - before < 20_000  # KiB; a leak of one small tensor per call would show


# ---- distributed --------------------------------------------------------------------------

def _ddp_worker(rank, world, store_path, x, out_path):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(SRC(6, 9, 2, backend="fused", weight_scale=5.0))
    shard = x[:, rank::world]
    out, _ = model(shard)
    # DDP averages the ranks' gradients: each rank's mean over its equal shard gives the
    # gradient of the mean over the whole batch
    (out.sum() / shard.shape[1]).backward()
    if rank == 0:
        torch.save([p.grad for p in model.module.parameters()], out_path)
    dist.destroy_process_group()


def test_ddp_two_processes_match_one_process(tmp_path):
    """DistributedDataParallel over 2 CPU processes (gloo) gives the gradients of one process
    on the whole batch."""
    import torch.multiprocessing as mp
    x = (torch.rand(15, 6, 6, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    out_path = str(tmp_path / "grads.pt")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "store"), x, out_path), nprocs=2, join=True)
    ddp_grads = torch.load(out_path)
    torch.manual_seed(0)
    model = SRC(6, 9, 2, backend="fused", weight_scale=5.0)
    out, _ = model(x)
    (out.sum() / x.shape[1]).backward()
    for a, p in zip(ddp_grads, model.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6), (a - p.grad).abs().max()
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())
