"""Speed of the fused SRC kernels against the pure-PyTorch reference, its torch.compile, and
torch.nn.GRU, measured side by side in one run.

    python benchmarks/speed.py                   # CPU: T=220, B=128, H=256, float32, 2 threads
    python benchmarks/speed.py --device cuda     # GPU: T=500, B=256, H=1024 (CUDA events)

What is timed (medians after warm-up; CUDA events on GPU):
  * recurrence: the time loop alone on a given drive u (T, B, H): the fused op vs the reference
    loop (srcext.reference), forward (training mode, saving for backward) and forward+backward;
  * compiled reference: the reference's cell step under torch.compile, looped in Python
    (compiling the unrolled 220-step loop takes minutes; one compiled step is what a user gets);
  * layer: a training step (forward + backward) of SRC(H, H) vs torch.nn.GRU(H, H);
  * on CUDA also: achieved bandwidth of each kernel against a device-to-device copy, bfloat16
    vs float32, and peak memory of the layer step.
Prints a table and writes JSON to benchmarks/results/speed_<device>.json (or --out).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

import srcext
from srcext.ops import CHECKPOINT_INTERVAL, src_recurrence_fused
from srcext.reference import SRCConstants, src_cell_step, src_recurrence_reference

HERE = os.path.dirname(os.path.abspath(__file__))


class Timer:
    """Median wall time of fn() after warm-up; CUDA events and synchronisation on GPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn, repeats: int, warmup: int = 2) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return statistics.median(times)


def recurrence_inputs(T, B, H, device, dtype, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    # A drive like the paper's first layer: neurons fire at a few percent of steps.
    u = (torch.randn(T, B, H, generator=g) * 0.4).to(device=device, dtype=dtype)
    bias = torch.full((H,), -6.0, device=device, dtype=dtype)
    state = tuple(torch.zeros(B, H, device=device, dtype=dtype) for _ in range(3))
    return u.requires_grad_(), bias.requires_grad_(), state


def make_step_runner(run, u, bias, state, k, detach):
    """(forward, forward+backward) closures for one recurrence implementation."""
    grad = torch.ones_like(u)

    def forward():
        return run(u, bias, state, k, detach, True)[0]

    def forward_backward():
        spikes = forward()
        torch.autograd.grad(spikes, (u, bias), grad)

    return forward, forward_backward


def compiled_reference(step):
    def run(u, bias, state, k, detach, st):
        outs = []
        for t in range(u.shape[0]):
            s, state = step(u[t], state, bias, k, detach, st)
            outs.append(s)
        return torch.stack(outs), state
    return run


def git_commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                                       stderr=subprocess.DEVNULL, text=True).strip()
    except Exception:
        return "unknown"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--T", type=int, default=None, help="time steps (cpu 220, cuda 500)")
    ap.add_argument("--B", type=int, default=None, help="batch (cpu 128, cuda 256)")
    ap.add_argument("--H", type=int, default=None, help="neurons (cpu 256, cuda 1024)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per case (median)")
    ap.add_argument("--skip-compile", action="store_true", help="skip the torch.compile baseline")
    ap.add_argument("--skip-gru", action="store_true", help="skip the torch.nn.GRU baseline")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/speed_<device>.json)")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is visible")
    if not srcext.fused_available(device):
        ap.error(f"the fused kernels are not available for {device}: build srcext with them first")
    cuda = device.type == "cuda"
    T = args.T or (500 if cuda else 220)
    B = args.B or (256 if cuda else 128)
    H = args.H or (1024 if cuda else 256)
    repeats = args.repeats or (10 if cuda else 5)
    ref_repeats = max(1, min(repeats, 3))
    torch.set_num_threads(args.threads)
    timer = Timer(device)
    k = SRCConstants()
    dtype = torch.float32
    results = {
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        "device_type": device.type, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "srcext": srcext.__version__,
        "commit": git_commit(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "T": T, "B": B, "H": H, "dtype": "float32", "checkpoint_interval": CHECKPOINT_INTERVAL,
        "timings_s": {},
    }
    tm = results["timings_s"]
    u, bias, state = recurrence_inputs(T, B, H, device, dtype)

    impls = {"fused": src_recurrence_fused, "reference": src_recurrence_reference}
    if not args.skip_compile:
        impls["compiled"] = compiled_reference(torch.compile(src_cell_step, dynamic=False))
    for detach in (True, False):
        tag = "detached" if detach else "bptt"
        for name, run in impls.items():
            fwd, fwd_bwd = make_step_runner(run, u, bias, state, k, detach)
            n = repeats if name == "fused" else ref_repeats
            warm = 3 if name == "compiled" else 2
            tm[f"recurrence_forward_{tag}_{name}"] = timer(fwd, n, warm)
            tm[f"recurrence_fwd_bwd_{tag}_{name}"] = timer(fwd_bwd, n, warm)
    with torch.no_grad():
        tm["recurrence_inference_fused"] = timer(
            lambda: src_recurrence_fused(u, bias, state, k), repeats)

    # The layer: a training step of SRC(H, H) vs nn.GRU(H, H) on the same input.
    x = (torch.rand(T, B, H, device=device) < 0.05).to(dtype)
    layer = srcext.SRC(H, H, backend="fused", device=device, dtype=dtype)

    def src_step():
        out, _ = layer(x)
        out.sum().backward()

    tm["layer_train_step_src"] = timer(src_step, repeats)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        src_step()
        results["peak_memory_bytes_src_layer_step"] = torch.cuda.max_memory_allocated(device)
    if not args.skip_gru:
        gru = torch.nn.GRU(H, H, device=device, dtype=dtype)

        def gru_step():
            out, _ = gru(x)
            out.sum().backward()

        tm["layer_train_step_gru"] = timer(gru_step, ref_repeats if not cuda else repeats)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
            gru_step()
            results["peak_memory_bytes_gru_layer_step"] = torch.cuda.max_memory_allocated(device)

    if cuda:
        cuda_extras(results, timer, u, bias, state, k, repeats)

    ratios = results["ratios"] = {}
    for tag in ("detached", "bptt"):
        for what in ("forward", "fwd_bwd"):
            fused = tm[f"recurrence_{what}_{tag}_fused"]
            ratios[f"{what}_{tag}_vs_reference"] = tm[f"recurrence_{what}_{tag}_reference"] / fused
            if f"recurrence_{what}_{tag}_compiled" in tm:
                ratios[f"{what}_{tag}_vs_compiled"] = tm[f"recurrence_{what}_{tag}_compiled"] / fused
    if "layer_train_step_gru" in tm:
        ratios["layer_step_vs_gru"] = tm["layer_train_step_gru"] / tm["layer_train_step_src"]

    print_table(results)
    out = args.out or os.path.join(HERE, "results", f"speed_{device.type}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nwrote {out}")
    return results


def cuda_extras(results, timer, u, bias, state, k, repeats):
    """Bandwidth against a device-to-device copy, bfloat16 vs float32."""
    tm = results["timings_s"]
    T, B, H = u.shape
    N = T * B * H
    src = torch.empty(N, device=u.device, dtype=torch.float32)
    dst = torch.empty_like(src)
    tm["copy_d2d"] = timer(lambda: dst.copy_(src), repeats)
    copy_bw = 2 * 4 * N / tm["copy_d2d"]
    ckpt = 3 * 4 * B * H * ((T + CHECKPOINT_INTERVAL - 1) // CHECKPOINT_INTERVAL)
    c = srcext.ops.constant_args(k)
    i0, h0, hs0 = (s.detach() for s in state)
    ud, bd = u.detach(), bias.detach()
    out = torch.ops.srcext.src_forward(ud, bd, i0, h0, hs0, *c, True, True, True)
    grad = torch.ones_like(ud)
    tm["kernel_forward_train"] = timer(
        lambda: torch.ops.srcext.src_forward(ud, bd, i0, h0, hs0, *c, True, True, True), repeats)
    tm["kernel_backward_detached"] = timer(
        lambda: torch.ops.srcext.src_backward(grad, i0, h0, hs0, ud, bd, out[4], *c, True, True), repeats)
    # Bytes each kernel must move: forward reads u, writes spikes (+ checkpoints);
    # backward reads grad_spikes and u (+ checkpoints), writes grad_u.
    fwd_bytes = 2 * 4 * N + ckpt
    bwd_bytes = 3 * 4 * N + ckpt
    results["bandwidth"] = {
        "copy_bytes_per_s": copy_bw,
        "forward_bytes_per_s": fwd_bytes / tm["kernel_forward_train"],
        "backward_bytes_per_s": bwd_bytes / tm["kernel_backward_detached"],
    }
    results["bandwidth"]["forward_fraction_of_copy"] = results["bandwidth"]["forward_bytes_per_s"] / copy_bw
    results["bandwidth"]["backward_fraction_of_copy"] = results["bandwidth"]["backward_bytes_per_s"] / copy_bw
    ub = u.detach().to(torch.bfloat16).requires_grad_()
    bb = bias.detach().to(torch.bfloat16).requires_grad_()
    sb = tuple(s.to(torch.bfloat16) for s in state)
    _, fb = make_step_runner(src_recurrence_fused, ub, bb, sb, k, True)
    tm["recurrence_fwd_bwd_detached_fused_bf16"] = timer(fb, repeats)
    results["bf16_speedup_vs_fp32"] = tm["recurrence_fwd_bwd_detached_fused"] / tm["recurrence_fwd_bwd_detached_fused_bf16"]


def print_table(results):
    tm = results["timings_s"]
    print(f"\nsrcext speed — {results['device']} ({results['device_type']}, "
          f"{results['threads']} threads), T={results['T']} B={results['B']} H={results['H']} float32")
    print(f"{'case':<44}{'time (ms)':>12}")
    for name, seconds in tm.items():
        print(f"{name:<44}{seconds * 1e3:>12.2f}")
    print(f"\n{'ratio (baseline time / fused time)':<44}{'x':>12}")
    for name, value in results["ratios"].items():
        print(f"{name:<44}{value:>12.1f}")
    for key in ("bandwidth", "bf16_speedup_vs_fp32"):
        if key in results:
            print(f"{key}: {results[key]}")


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
