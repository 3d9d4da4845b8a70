"""Parallel use: one model from several threads, and DistributedDataParallel over two
processes against one process on the whole batch."""

import gc
import threading

import pytest
import torch

from srcext import SRC

from helpers import requires_fused

pytestmark = requires_fused


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
    # The gloo group lives in a reference cycle, so without this collection it is freed only
    # during interpreter shutdown; its worker threads then need the GIL, CPython ends them
    # with pthread_exit and the C++ runtime aborts (about one run in four, with nn.GRU too).
    # Freeing it here, while the interpreter is whole, joins those threads cleanly.
    del model
    dist.destroy_process_group()
    gc.collect()


@pytest.mark.slow
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
