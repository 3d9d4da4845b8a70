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

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

import srcext

from machine import command_line, describe, git_commit


def per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def paired(src_fn, torch_fn, rounds: int, calls: int) -> dict:
    for _ in range(3):  # warm-up: the data init, caches, the allocator
        src_fn(), torch_fn()
    src_t, torch_t, ratios = [], [], []
    for r in range(rounds):
        order = (src_fn, torch_fn) if r % 2 == 0 else (torch_fn, src_fn)
        times = {fn: per_call(fn, calls) for fn in order}
        src_t.append(times[src_fn])
        torch_t.append(times[torch_fn])
        ratios.append(times[src_fn] / times[torch_fn])
    return {
        "src_us_median": statistics.median(src_t) * 1e6,
        "torch_us_median": statistics.median(torch_t) * 1e6,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def cases(input_size: int, hidden: int, batch: int, backend: str):
    torch.manual_seed(0)
    x1 = torch.randn(1, batch, input_size)
    src = srcext.SRC(input_size, hidden, backend=backend)
    gru = torch.nn.GRU(input_size, hidden)
    grad_out = torch.randn(1, batch, hidden)
    src(x1)  # the data init runs once, on the first training call

    def fwd_bwd(layer):
        def run():
            out = layer(x1)[0]
            out.backward(grad_out)

        return run

    def inference(layer):
        def run():
            with torch.no_grad():
                layer(x1)

        return run

    xs = torch.randn(batch, input_size)
    cell, gru_cell = srcext.SRCCell(input_size, hidden, backend=backend), torch.nn.GRUCell(input_size, hidden)
    cell(xs)
    with torch.no_grad():
        cell_state = cell(xs)[1]
        gru_h = gru_cell(xs)

    def cell_step():
        with torch.no_grad():
            cell(xs, cell_state)

    def gru_step():
        with torch.no_grad():
            gru_cell(xs, gru_h)

    grad_cell = torch.randn(batch, hidden)

    def cell_step_bwd():
        cell(xs, cell_state)[0].backward(grad_cell)

    def gru_step_bwd():
        gru_cell(xs, gru_h).backward(grad_cell)

    return {
        "layer_fwd_bwd": (fwd_bwd(src), fwd_bwd(gru)),
        "layer_inference": (inference(src), inference(gru)),
        "cell_step": (cell_step, gru_step),
        "cell_step_fwd_bwd": (cell_step_bwd, gru_step_bwd),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="fused")
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--out", default=os.path.join("runs", "host_overhead.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {
        "machine": describe(torch.device("cpu")),
        "commit": git_commit(),
        "command": command_line("benchmarks/host_overhead.py", argv if argv is not None else sys.argv[1:]),
        "sizes": {"input_size": args.input_size, "hidden": args.hidden, "batch": args.batch, "T": 1},
        "threads": args.threads,
        "cases": {},
    }
    only = set(filter(None, args.only.split(",")))
    for name, (src_fn, torch_fn) in cases(args.input_size, args.hidden, args.batch, args.backend).items():
        if only and name not in only:
            continue
        r = paired(src_fn, torch_fn, args.rounds, args.calls)
        results["cases"][name] = r
        print(
            f"{name:18s} SRC {r['src_us_median']:7.1f} us  torch {r['torch_us_median']:7.1f} us  "
            f"SRC/torch {r['ratio_median']:.2f}x [{r['ratio_min']:.2f}, {r['ratio_max']:.2f}]",
            flush=True,
        )
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
