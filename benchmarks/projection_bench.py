"""Event-driven input projection against the dense GEMM (``python benchmarks/speed.py
--projection``, or this file directly).

1. The projection alone, u = s W^T and dW = grad_u^T s, at densities of s from 0.5 % to 30 %
   (T * B = 220 * 64 rows, in = 784, H = 512; float32 and bfloat16), four contenders run
   interleaved round by round:
     dense   the ATen GEMMs (torch.nn.functional.linear's mm, and grad_u^T s);
     auto    src_projection / src_projection_weight_grad with the layer's crossover (the
             events are built from the dense s in the forward and again in the backward);
     sparse  the same ops with the event path forced (max_density = 1);
     events  src_event_matmul / src_event_weight_grad on a prebuilt event list (the input
             arrives as events, e.g. from RateEncoder.events).
   The crossover is where sparse and dense take the same time (interpolated on log density).
2. The paper's MNIST network (784 -> SRC 512 -> SRC 100, batch 64, T = 220) training step end
   to end (rate encoding, forward, loss, backward, Adam), dense (input_projection="dense" on
   the encoder's dense spikes: today's step) against event-driven (input_projection="auto" on
   RateEncoder.events), in float32 and under bf16 autocast. MNIST-like synthetic images (no
   dataset needed): the rate code is ~3 % non-zero, as MNIST's.

Min and median over rounds are reported; the machine may be shared (say so with the numbers).
Writes benchmarks/results/projection_<device>.json and a plot projection_<device>.png.
"""

import argparse
import datetime
import math
import os
import statistics

import torch

# srcext as installed (or PYTHONPATH=srcpkg), as for speed.py: a path inserted here would also
# reach every process the importer spawns (the test suite's DDP workers).
from srcext.data import RateEncoder
from srcext.projection import crossover as layer_crossover
from srcext.models import SRCClassifier

from machine import ROOT, command_line, describe, git_commit, int_options, interleaved, wall_time, write_json
from machine import label as machine_label

DENSITIES = (0.005, 0.01, 0.03, 0.10, 0.30)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
PROJECTIONS = {"dense": "dense", "events": "auto"}  # contender: the layers' input_projection


def timer(device):
    """Seconds of one call by perf_counter, the device synchronised before and after."""
    if device.type == "cuda":
        return lambda call: wall_time(call, sync=lambda: torch.cuda.synchronize(device))
    return wall_time


def summary(xs: list) -> dict:
    return {"min_ms": 1e3 * min(xs), "median_ms": 1e3 * statistics.median(xs), "rounds": len(xs)}


def contenders(R, F, H, density, dtype, device, auto: float, seed=0):
    """Random inputs s (of the density), W and grad_u, and the events of s; forward + weight
    gradient of them, the four ways, by name."""
    ops, gen = torch.ops.srcext, torch.Generator(device="cpu").manual_seed(seed)
    s = (torch.rand(R, F, generator=gen) < density).to(dtype).to(device)
    w = (torch.randn(H, F, generator=gen) / math.sqrt(F)).to(dtype).to(device)
    g = torch.randn(R, H, generator=gen).to(dtype).to(device)  # grad_u
    events = ops.src_events(s)
    return events, {
        "dense": lambda: (torch.nn.functional.linear(s, w), g.t().mm(s)),
        "auto": lambda: (ops.src_projection(s, w, auto), ops.src_projection_weight_grad(g, s, auto)),
        "sparse": lambda: (ops.src_projection(s, w, 1.0), ops.src_projection_weight_grad(g, s, 1.0)),
        "events": lambda: (ops.src_event_matmul(*events, w), ops.src_event_weight_grad(*events, g, F)),
    }


def bench_projection(T, B, F, H, densities, dtypes, rounds, warmup, device) -> dict:
    R = T * B
    out = {}
    for dname in dtypes:
        auto = layer_crossover(device, DTYPES[dname])
        out[dname] = {}
        for d in densities:
            events, calls = contenders(R, F, H, d, DTYPES[dname], device, auto)
            times = interleaved(calls, rounds, warmup, timer(device))
            row = out[dname][str(d)] = {n: summary(t) for n, t in times.items()}
            row["measured_density"] = events[1].numel() / (R * F)
            for n in ("auto", "sparse", "events"):
                row[f"speedup_{n}_min"] = row["dense"]["min_ms"] / row[n]["min_ms"]
                row[f"speedup_{n}_median"] = row["dense"]["median_ms"] / row[n]["median_ms"]
            print(
                f"  {dname:8s} density {100 * d:5.1f} %: dense {row['dense']['median_ms']:8.1f} ms"
                f"  sparse {row['sparse']['median_ms']:7.1f} ms ({row['speedup_sparse_median']:.1f}x)"
                f"  events {row['events']['median_ms']:7.1f} ms ({row['speedup_events_median']:.1f}x)"
                f"  auto {row['auto']['median_ms']:7.1f} ms  (median; min "
                f"{row['speedup_sparse_min']:.1f}x / {row['speedup_events_min']:.1f}x)",
                flush=True,
            )
        out[dname]["crossover"] = crossover_density(out[dname], densities)
    return out


def crossover_density(rows: dict, densities) -> dict:
    """Where the sparse path's median time meets the dense one (log-linear between the two
    densities that bracket it); None past the measured range."""
    result = {}
    for n in ("sparse", "events"):
        ratio = [(d, rows[str(d)][n]["median_ms"] / rows[str(d)]["dense"]["median_ms"]) for d in densities]
        result[n] = f"> {ratio[-1][0]}" if ratio and ratio[-1][1] <= 1.0 else None  # no bracket: still faster?
        for (d0, r0), (d1, r1) in zip(ratio, ratio[1:]):
            if r0 <= 1.0 < r1:  # the first bracket
                t = -math.log(r0) / (math.log(r1) - math.log(r0))
                result[n] = math.exp(math.log(d0) + t * (math.log(d1) - math.log(d0)))
                break
    return result


def mnist_like_images(B, seed=0):
    """Digit-sized blobs on 28 x 28: ~19 % of the pixels lit, as MNIST's, intensity ~0.65, so
    that the paper's gain 0.25 gives ~3 % of non-zero inputs."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centre = 14 + 2 * torch.randn(B, 2, generator=g)
    radius = 6 + torch.rand(B, 1, 1, generator=g)
    dist = ((yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2).sqrt()
    ring = (dist - radius).abs() < 1.7
    return (ring * (0.3 + 0.7 * torch.rand(B, 28, 28, generator=g)) * 255).to(torch.uint8)


def bench_mnist(B, rounds, warmup, device, precisions) -> dict:
    encoder = RateEncoder(gain=0.25, silent_steps=20, input_steps=200)
    images = mnist_like_images(B).to(device)
    labels = torch.randint(0, 10, (B,), generator=torch.Generator().manual_seed(1)).to(device)
    out = {"T": encoder.steps, "B": B, "layers": "784 -> SRC 512 -> SRC 100"}
    for precision in precisions:
        amp = precision == "bf16"
        steps = {}
        for name, mode in PROJECTIONS.items():
            torch.manual_seed(0)  # the same initial weights for both
            model = SRCClassifier(
                784, hidden_layers=1, hidden_size=512, neurons_per_class=10, input_projection=mode
            ).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            gen = torch.Generator(device=device).manual_seed(2)

            def step(model=model, opt=opt, gen=gen, mode=mode, amp=amp):
                encode = encoder if mode == "dense" else encoder.events  # dense spikes, or their events
                x = encode(images, gen, torch.bfloat16 if amp else torch.float32)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits, spikes = model(x, return_spikes=True)
                    loss = torch.nn.functional.cross_entropy(logits.float(), labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step.rates = [float(s.ne(0).float().mean()) for s in spikes]

            steps[name] = step
        times = interleaved(steps, rounds, warmup, timer(device))
        row = out[precision] = {n: summary(t) for n, t in times.items()}
        row["speedup_min"] = row["dense"]["min_ms"] / row["events"]["min_ms"]
        row["speedup_median"] = row["dense"]["median_ms"] / row["events"]["median_ms"]
        row["input_density"] = float(encoder.events(images, torch.Generator(device=device).manual_seed(3)).density())
        row["layer_output_density"] = steps["events"].rates
        print(
            f"  MNIST step {precision}: dense {row['dense']['median_ms']:.0f} ms, events "
            f"{row['events']['median_ms']:.0f} ms: {row['speedup_median']:.2f}x median, "
            f"{row['speedup_min']:.2f}x min (input density {100 * row['input_density']:.1f} %, "
            f"layer outputs {[round(100 * r, 1) for r in row['layer_output_density']]} %)",
            flush=True,
        )
    return out


def plot(results: dict, path: str) -> None:
    from matplotlib.figure import Figure  # no pyplot: no GUI backend wanted

    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, len(results["projection"]), squeeze=False)
    for ax, (dname, rows) in zip(axes[0], results["projection"].items()):
        ds = [float(d) for d in rows if d != "crossover"]
        for n, style in (("dense", "k-"), ("sparse", "C0o-"), ("events", "C1s--"), ("auto", "C2:")):
            ax.plot([100 * d for d in ds], [rows[str(d)][n]["median_ms"] for d in ds], style, label=n)
        cross = rows["crossover"].get("sparse")
        if isinstance(cross, float):
            ax.axvline(100 * cross, color="C3", lw=0.8)
            ax.text(100 * cross, ax.get_ylim()[1] * 0.6, f" crossover {100 * cross:.0f} %", color="C3")
        ax.set(xscale="log", yscale="log", title=f"{dname}: R={results['R']}, F={results['F']}, H={results['H']}")
        ax.set(xlabel="density of s (% non-zero)", ylabel="forward + weight gradient (ms, median)")
        ax.legend()
    fig.suptitle(f"event-driven projection vs dense GEMM, {machine_label(results)}, {results['threads']} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    int_options(ap, threads=2, rounds=7, warmup=1, T=220, B=64, F=784, H=512)
    ap.add_argument("--densities", type=float, nargs="+", default=list(DENSITIES))
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    ap.add_argument("--skip-mnist", action="store_true")
    ap.add_argument("--mnist-precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--skip-projection", action="store_true")
    ap.add_argument("--out", default=None, help="JSON (default benchmarks/results/projection_<device>.json)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    results = {
        **describe(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line("benchmarks/projection_bench.py", argv),
        "R": args.T * args.B,
        "F": args.F,
        "H": args.H,
        "layer_crossover": {d: layer_crossover(device, t) for d, t in DTYPES.items()},
        "load_average_at_start": os.getloadavg(),
    }
    if not args.skip_projection:
        print(
            f"projection alone: R = {args.T} * {args.B}, F = {args.F}, H = {args.H}, "
            f"{args.threads} threads, {args.rounds} rounds (interleaved)"
        )
        results["projection"] = bench_projection(
            args.T, args.B, args.F, args.H, args.densities, args.dtypes, args.rounds, args.warmup, device
        )
        for dname, rows in results["projection"].items():
            print(f"  crossover {dname}: {rows['crossover']}")
    if not args.skip_mnist:
        print("MNIST 784-512-100 training step, dense vs event-driven:")
        results["mnist"] = bench_mnist(args.B, args.rounds, args.warmup, device, args.mnist_precisions)
    results["load_average_at_end"] = os.getloadavg()
    out = args.out or os.path.join(ROOT, "benchmarks", "results", f"projection_{device.type}.json")
    write_json(out, results, indent=2)
    png = os.path.splitext(out)[0] + ".png"
    if "projection" in results:
        plot(results, png)
    print(f"wrote {out} and {png}" if "projection" in results else f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
