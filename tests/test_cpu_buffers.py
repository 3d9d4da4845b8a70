"""The CPU ops keep their large output buffers for reuse (csrc/recurrence/cpu/src_cpu_buffers.h): a
repeated training step faults in no new pages, results are unchanged, and the cache can be
emptied."""

import resource

import torch

from srcext.ops import src_recurrence_fused
from srcext.reference import SRCConstants

from helpers import requires_fused

pytestmark = requires_fused


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def training_step(u, bias, state, grad):
    spikes, _ = src_recurrence_fused(u, bias, state, SRCConstants())
    (gu,) = torch.autograd.grad(spikes, u, grad)
    return spikes.detach(), gu


def test_repeated_steps_fault_in_no_new_pages_and_give_the_same_results():
    T, B, H = 200, 32, 256
    g = torch.Generator().manual_seed(0)
    u = (torch.randn(T, B, H, generator=g) * 0.8).requires_grad_()
    bias = torch.full((H,), -5.0)
    state = tuple(torch.zeros(B, H) for _ in range(3))
    grad = torch.randn(T, B, H, generator=g)
    output_pages = 3 * T * B * H * 4 // 4096  # spikes, grad_u and the ops' temporaries
    first = training_step(u, bias, state, grad)
    training_step(u, bias, state, grad)  # warm: whatever the first steps left to the cache
    faults = []
    for _ in range(3):
        before = minor_faults()
        again = training_step(u, bias, state, grad)
        faults.append(minor_faults() - before)
        assert all(torch.equal(a, b) for a, b in zip(first, again))
    # Without the cache each step faults in every page of its outputs again (>= output_pages);
    # with it only a handful (the test's own small tensors).
    assert min(faults) < output_pages // 20, (faults, output_pages)


def test_release_frees_the_kept_buffers():
    u = torch.randn(100, 16, 128, requires_grad=True)
    training_step(u, torch.full((128,), -5.0), tuple(torch.zeros(16, 128) for _ in range(3)), torch.ones(100, 16, 128))
    assert torch.ops.srcext.release_cpu_buffers() > 0
    assert torch.ops.srcext.release_cpu_buffers() == 0


def test_small_outputs_do_not_use_the_cache():
    torch.ops.srcext.release_cpu_buffers()
    u = torch.randn(5, 2, 3, requires_grad=True)
    training_step(u, torch.full((3,), -5.0), tuple(torch.zeros(2, 3) for _ in range(3)), torch.ones(5, 2, 3))
    assert torch.ops.srcext.release_cpu_buffers() == 0


VARIABLE_T_SCRIPT = """
import random, resource, sys
import torch
from srcext.ops import src_recurrence_fused
from srcext.reference import SRCConstants
torch.set_num_threads(1)
B, H = 32, 512
bias = torch.full((H,), -5.0)
state = tuple(torch.zeros(B, H) for _ in range(3))

def step(T):
    u = (torch.randn(T, B, H) * 0.8).requires_grad_()
    spikes, _ = src_recurrence_fused(u, bias, state, SRCConstants())
    torch.autograd.grad(spikes, u, torch.ones_like(spikes))

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

for _ in range(3):
    step(300)
fixed = peak_mb()
rng = random.Random(0)
for _ in range(30):
    step(rng.randint(10, 300))
print(fixed, peak_mb())
"""


def test_variable_length_training_keeps_memory_to_the_working_set():
    """A different T on every call (as with bucketed variable-length batches) reuses the kept
    buffers instead of hoarding one set per size: peak RSS grows by at most 300 MB over a run
    at the longest T (it grew by ~2 GB when only exact sizes were reused)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", VARIABLE_T_SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    fixed, variable = map(float, out.stdout.split())
    assert variable - fixed <= 300, (fixed, variable)
