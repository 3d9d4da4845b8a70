"""Per-call host cost of SRC against torch's own GRU, at sizes where only the overhead counts
(one thread, tiny tensors): what a streaming or step-by-step user pays per call.

    python benchmarks/host_overhead.py            # prints paired ratios, writes runs/host_overhead.json

Cases (each SRC contender against its torch counterpart, the same sizes):
  * layer_fwd_bwd: SRC(I, H) on (T=1, B, I), forward + backward of a dense random upstream
    gradient, against nn.GRU(I, H);
  * layer_inference: the same forward under torch.no_grad;
  * cell_step: SRCCell(I, H) one step with its state passed in (inference), against
    nn.GRUCell(I, H) with its h passed in;
  * cell_step_fwd_bwd: the cell step with gradients (forward + backward).

How: the two contenders of a case run interleaved, in alternating order, for --rounds rounds;
each round times --calls calls of each back to back (perf_counter) and keeps the per-call
mean; the ratio SRC / torch is taken per round (paired) and reported as the median with the
minimum and maximum over the rounds. Ratios below 1 mean SRC costs less per call.
"""

import argparse
import os
import statistics

import torch

import srcext

from machine import command_line, describe, git_commit, int_options, interleaved, wall_time, write_json


def paired(src_fn, torch_fn, rounds: int, calls: int) -> dict:
    for _ in range(3):  # warm-up: the data init, caches, the allocator
        src_fn(), torch_fn()
    t = interleaved({"src": src_fn, "torch": torch_fn}, rounds, 0, lambda fn: wall_time(fn, calls))
    ratios = [s / o for s, o in zip(t["src"], t["torch"])]
    return {
        "src_us_median": statistics.median(t["src"]) * 1e6,
        "torch_us_median": statistics.median(t["torch"]) * 1e6,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def training(module, *inputs, grad):
    """A call of module on inputs, forward + backward of grad (from its output, or the first)."""

    def run():
        out = module(*inputs)
        (out if isinstance(out, torch.Tensor) else out[0]).backward(grad)

    return run


def inference(module, *inputs):
    def run():
        with torch.no_grad():
            module(*inputs)

    return run


def cases(input_size: int, hidden: int, batch: int, backend: str):
    torch.manual_seed(0)
    x1 = torch.randn(1, batch, input_size)
    src, gru = srcext.SRC(input_size, hidden, backend=backend), torch.nn.GRU(input_size, hidden)
    grad_out = torch.randn(1, batch, hidden)
    src(x1)  # the data init runs once, on the first training call
    xs = torch.randn(batch, input_size)
    cell, gru_cell = srcext.SRCCell(input_size, hidden, backend=backend), torch.nn.GRUCell(input_size, hidden)
    cell(xs)
    with torch.no_grad():
        state = cell(xs)[1]
        gru_h = gru_cell(xs)
    grad_h = torch.randn(batch, hidden)
    return {
        "layer_fwd_bwd": (training(src, x1, grad=grad_out), training(gru, x1, grad=grad_out)),
        "layer_inference": (inference(src, x1), inference(gru, x1)),
        "cell_step": (inference(cell, xs, state), inference(gru_cell, xs, gru_h)),
        "cell_step_fwd_bwd": (
            training(cell, xs, state, grad=grad_h),
            training(gru_cell, xs, gru_h, grad=grad_h),
        ),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    int_options(parser, input_size=64, hidden=64, batch=8, rounds=15, calls=200, threads=1)
    parser.add_argument("--backend", default="fused")
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--out", default=os.path.join("runs", "host_overhead.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {
        "machine": describe(torch.device("cpu")),
        "commit": git_commit(),
        "command": command_line("benchmarks/host_overhead.py", argv),
        "sizes": {"input_size": args.input_size, "hidden": args.hidden, "batch": args.batch, "T": 1},
        "threads": args.threads,
        "cases": {},
    }
    only = set(filter(None, args.only.split(",")))
    for name, (src_fn, torch_fn) in cases(args.input_size, args.hidden, args.batch, args.backend).items():
        if only and name not in only:
            continue
        r = results["cases"][name] = paired(src_fn, torch_fn, args.rounds, args.calls)
        print(
            f"{name:18s} SRC {r['src_us_median']:7.1f} us  torch {r['torch_us_median']:7.1f} us  "
            f"SRC/torch {r['ratio_median']:.2f}x [{r['ratio_min']:.2f}, {r['ratio_max']:.2f}]",
            flush=True,
        )
    if args.out:
        write_json(args.out, results, indent=1)
    return results


if __name__ == "__main__":
    main()
