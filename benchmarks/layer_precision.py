"""One layer's training step, SRC against nn.GRU, in three precision modes, each applied to
both contenders (a matched comparison: torch runs cuDNN's RNNs in TF32 by default while
`matmul`, SRC's GEMM, stays strict FP32).

    python benchmarks/layer_precision.py --device cuda    # T=500, B=256, H=1024 (the H200 run's size)
    python benchmarks/layer_precision.py                  # CPU dry run at small sizes

Modes:
  strict_fp32    torch.backends.cuda.matmul.allow_tf32 = cudnn.allow_tf32 = False
  tf32           both True
  bf16_autocast  strict flags, the step under torch.autocast(device, torch.bfloat16)

A step is forward + backward of a dense random upstream gradient (not ``.sum()``, which hands
the layer a stride-0 gradient). Per mode the two contenders run interleaved, in alternating
order, for --rounds rounds after --warmup; each call is timed alone (CUDA events on a GPU,
perf_counter on the CPU); reported: median and minimum per contender and the paired ratio
GRU / SRC per round (median, min, max). The names of the kernels one profiled step ran
(torch.profiler) are recorded per contender and mode, so that the mode is proven (TF32 and
bf16 GEMMs name their instruction shapes), with the share of the step's device time each took.
Writes JSON to runs/layer_precision_<device>.json (or --out).
"""

import argparse
import contextlib
import os
import statistics

import torch

import srcext
from machine import call_timer, command_line, describe, git_commit, int_options, interleaved, write_json

MODES = ("strict_fp32", "tf32", "bf16_autocast")


@contextlib.contextmanager
def precision(mode: str, device: torch.device):
    """The matmul/cuDNN TF32 flags (and autocast) of ``mode``, restored afterwards."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "bf16_autocast"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def make_step(layer: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor):
    def step():
        out = layer(x)[0]
        out.backward(grad.to(out.dtype))

    return step


def kernels_of(step, device: torch.device, top: int = 8) -> list:
    """The kernels (GPU) or ops (CPU) of one step, by self time: [name, share of the step]."""
    cuda = device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU] + [torch.profiler.ProfilerActivity.CUDA] * cuda
    with torch.profiler.profile(activities=activities) as prof:
        step()
        if cuda:
            torch.cuda.synchronize()
    self_time = "self_device_time_total" if cuda else "self_cpu_time_total"
    rows = [(e.key, getattr(e, self_time)) for e in prof.key_averages() if getattr(e, self_time) > 0]
    total = sum(t for _, t in rows) or 1.0
    rows.sort(key=lambda r: -r[1])
    return [[name, round(t / total, 4)] for name, t in rows[:top]]


def run_mode(mode, device, T, B, H, rounds, warmup, seed=0) -> dict:
    torch.manual_seed(seed)
    src, gru = srcext.SRC(H, H, device=device), torch.nn.GRU(H, H, device=device)
    x, grad = torch.rand(T, B, H, device=device), torch.randn(T, B, H, device=device)
    steps = {"srcext SRC": make_step(src, x, grad), "nn.GRU": make_step(gru, x, grad)}
    with precision(mode, device):
        steps["srcext SRC"]()  # the data-dependent init runs on the first training call
        times = interleaved(steps, rounds, warmup, call_timer(device))
        kernels = {name: kernels_of(step, device) for name, step in steps.items()}
        fired = float((src(x)[0] > 0).float().mean())
    ratios = [g / s for g, s in zip(times["nn.GRU"], times["srcext SRC"])]
    return {
        "ms": {name: {"median": statistics.median(t) * 1e3, "min": min(t) * 1e3} for name, t in times.items()},
        "gru_over_src": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
        "kernels": kernels,
        "src_firing_rate": fired,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--T", type=int, default=None, help="steps (default: 500 on CUDA, 50 on the CPU)")
    parser.add_argument("--B", type=int, default=None, help="batch (default: 256 on CUDA, 16 on the CPU)")
    parser.add_argument("--H", type=int, default=None, help="input and hidden size (default: 1024 / 128)")
    int_options(parser, rounds=9, warmup=2)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sizes = {k: getattr(args, k) or default for k, default in zip("TBH", (500, 256, 1024) if cuda else (50, 16, 128))}
    out = args.out if args.out is not None else os.path.join("runs", f"layer_precision_{device.type}.json")
    results = {
        "machine": describe(device),
        "commit": git_commit(),
        "torch": torch.__version__,
        "command": command_line("benchmarks/layer_precision.py", argv),
        "sizes": sizes,
        "modes": {},
    }
    for mode in args.modes.split(","):
        if mode not in MODES:
            raise SystemExit(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        r = results["modes"][mode] = run_mode(mode, device, **sizes, rounds=args.rounds, warmup=args.warmup)
        ms, ratio = r["ms"], r["gru_over_src"]
        print(
            f"{mode:14s} SRC {ms['srcext SRC']['median']:8.2f} ms  GRU {ms['nn.GRU']['median']:8.2f} ms  "
            f"SRC faster by {ratio['median']:.2f}x [{ratio['min']:.2f}, {ratio['max']:.2f}]",
            flush=True,
        )
        for name, kernels in r["kernels"].items():
            print(f"    {name}: " + "; ".join(f"{k[:60]} {share:.0%}" for k, share in kernels[:3]))
    if out:
        write_json(out, results, indent=1)
    return results


if __name__ == "__main__":
    main()
