"""The fused CUDA kernels, each launched once inside a profiler range, for Nsight Compute:

    ncu --profile-from-start off --clock-control none --section SpeedOfLight ... \\
        python benchmarks/gpu_profile.py

benchmarks/gpu_check.sh runs it so. The size is speed.py's CUDA one (T=500, B=256, H=1024,
float32, the same drive); the launches are warmed up first, outside the range, so that the
profiled ones are steady-state: the training forward, the inference forward, and the backward
with each gradient setting (detached + straight-through, the layer's default, and exact BPTT).
"""

import argparse

import torch

from srcext.reference import SRCConstants

from machine import int_options
from speed import kernel_calls, recurrence_inputs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    int_options(ap, T=500, B=256, H=1024)
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    args = ap.parse_args(argv)
    for name in args.dtypes:
        # the profiled calls, by name: speed.py's kernel calls, from a random upstream gradient
        u, bias, state = recurrence_inputs(args.T, args.B, args.H, "cuda", getattr(torch, name))
        calls = kernel_calls(u, bias, state, SRCConstants(), torch.randn_like(u.detach()))
        for call in calls.values():  # warm-up: module load, allocator, caches
            call()
        torch.cuda.synchronize()
        torch.cuda.cudart().cudaProfilerStart()
        for what, call in calls.items():
            with torch.cuda.nvtx.range(f"{what} {name}"):
                call()
        torch.cuda.synchronize()
        torch.cuda.cudart().cudaProfilerStop()
        print(f"profiled {', '.join(calls)} in {name}")


if __name__ == "__main__":
    main()
