"""The fused CUDA kernels, each launched once inside a profiler range, for Nsight Compute:

    ncu --profile-from-start off --clock-control none --section SpeedOfLight ... \\
        python benchmarks/gpu_profile.py

benchmarks/gpu_check.sh runs it so. The size is speed.py's CUDA one (T=500, B=256, H=1024,
float32, the same drive); the launches are warmed up first, outside the range, so that the
profiled ones are steady-state: the training forward, the inference forward, and the backward
with each gradient setting (detached + straight-through, the layer's default, and exact BPTT).
"""

from __future__ import annotations

import argparse

import torch

from srcext.ops import constant_args
from srcext.reference import SRCConstants

from speed import recurrence_inputs


def launches(T: int, B: int, H: int, dtype: torch.dtype, device: str = "cuda"):
    """The profiled calls, by name (each a closure over its inputs)."""
    u, bias, state = recurrence_inputs(T, B, H, device, dtype)
    c = constant_args(SRCConstants(), u.dtype)
    u, bias = u.detach(), bias.detach()
    i0, h0, hs0 = state
    zeros = [torch.zeros_like(i0) for _ in range(3)]
    ops = torch.ops.srcext
    ckpt = ops.src_forward(u, bias, i0, h0, hs0, *c, True, True, True)[4]
    grad = torch.randn_like(u)
    return {
        "forward_train": lambda: ops.src_forward(u, bias, i0, h0, hs0, *c, True, True, True),
        "forward_inference": lambda: ops.src_forward(u, bias, i0, h0, hs0, *c, True, True, False),
        "backward_detached_st": lambda: ops.src_backward(grad, *zeros, u, bias, ckpt, *c, True, True, False),
        "backward_exact": lambda: ops.src_backward(grad, *zeros, u, bias, ckpt, *c, False, False, False),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--B", type=int, default=256)
    ap.add_argument("--H", type=int, default=1024)
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    args = ap.parse_args(argv)
    for name in args.dtypes:
        calls = launches(args.T, args.B, args.H, getattr(torch, name))
        for call in calls.values():  # warm-up: module load, allocator, caches
            call()
        torch.cuda.synchronize()
        torch.cuda.cudart().cudaProfilerStart()
        for what, call in calls.items():
            torch.cuda.nvtx.range_push(f"{what} {name}")
            call()
            torch.cuda.nvtx.range_pop()
        torch.cuda.synchronize()
        torch.cuda.cudart().cudaProfilerStop()
        print(f"profiled {', '.join(calls)} in {name}")


if __name__ == "__main__":
    main()
