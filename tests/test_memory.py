"""Memory: a 100,000-step sequence at 4.75 saved bytes per neuron-step, and resident memory
flat over 10,000 calls (slow: ``-m "not slow"`` leaves it out)."""

import os

import pytest
import torch

from srcext.ops import src_recurrence_fused
from srcext.reference import SRCConstants

from helpers import requires_fused

pytestmark = requires_fused


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
        lambda t: saved.append(t.untyped_storage().nbytes()) or t, lambda t: t
    ):
        spikes, _ = src_recurrence_fused(u, bias, state, SRCConstants())
    assert sum(saved) / (T * B * H) <= 4.8
    spikes.sum().backward()
    assert torch.isfinite(u.grad).all() and (spikes > 0).any()


@pytest.mark.slow
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
