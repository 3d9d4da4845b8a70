"""Summarise a benchmarks/gpu_check.sh run: OUT/gpu_summary.json and OUT/gpu_summary.md with
the figures of the CUDA targets (T=500, B=256, H=1024, float32)."""

import json
import os
import re
import sys

TARGETS = {  # key: (threshold, what)
    "recurrence_speedup_vs_reference": (50.0, "recurrence fwd+bwd vs reference"),
    "recurrence_speedup_vs_compiled": (3.0, "recurrence fwd+bwd vs compiled reference"),
    "bandwidth_fraction_forward": (0.6, "forward kernel bandwidth / copy bandwidth"),
    "bandwidth_fraction_backward": (0.6, "backward kernel bandwidth / copy bandwidth"),
    "layer_speedup_vs_gru": (3.0, "SRC layer training step vs cuDNN GRU"),
}


def main(out: str) -> None:
    summary = {}
    stages = {}
    if os.path.exists(os.path.join(out, "stages.txt")):
        for line in open(os.path.join(out, "stages.txt")):
            name, _, code = line.strip().partition("=")
            stages[name] = int(code)
    summary["stages_exit_codes"] = stages
    log = os.path.join(out, "pytest_cuda.log")
    lines = open(log).read().splitlines() if os.path.exists(log) else []
    result_lines = [line for line in lines if re.search(r"\d+ (passed|failed|error)", line)]
    summary["pytest_summary"] = result_lines[-1].strip("= ") if result_lines else "no pytest summary"
    summary["cuda_tests_passed"] = stages.get("cuda_tests") == 0 and "passed" in summary["pytest_summary"]
    speed_path = os.path.join(out, "speed_cuda.json")
    if os.path.exists(speed_path):
        speed = json.load(open(speed_path))
        r = speed.get("ratios", {})
        bw = speed.get("bandwidth", {})
        summary.update(
            {
                "gpu": speed.get("device"),
                "torch": speed.get("torch"),
                "cuda": speed.get("cuda"),
                "commit": speed.get("commit"),
                "T": speed.get("T"),
                "B": speed.get("B"),
                "H": speed.get("H"),
                "recurrence_speedup_vs_reference": r.get("fwd_bwd_detached_vs_reference"),
                "recurrence_speedup_vs_compiled": r.get("fwd_bwd_detached_vs_compiled"),
                "recurrence_bptt_speedup_vs_reference": r.get("fwd_bwd_bptt_vs_reference"),
                "recurrence_forward_speedup_vs_reference": r.get("forward_detached_vs_reference"),
                "bandwidth_fraction_forward": bw.get("forward_fraction_of_copy"),
                "bandwidth_fraction_backward": bw.get("backward_fraction_of_copy"),
                "copy_bandwidth_bytes_per_s": bw.get("copy_bytes_per_s"),
                "layer_speedup_vs_gru": r.get("layer_step_vs_gru"),
                "bf16_speedup_vs_fp32": speed.get("bf16_speedup_vs_fp32"),
                "peak_memory_bytes_src_layer_step": speed.get("peak_memory_bytes_src_layer_step"),
                "peak_memory_bytes_gru_layer_step": speed.get("peak_memory_bytes_gru_layer_step"),
                "timings_s": speed.get("timings_s"),
            }
        )
    projection_path = os.path.join(out, "projection_cuda.json")
    if os.path.exists(projection_path):
        projection = json.load(open(projection_path))
        # Where the event path starts to win, per dtype, against the crossover the layer uses now.
        summary["event_projection_crossover"] = {
            dtype: rows.get("crossover") for dtype, rows in projection.get("projection", {}).items()
        }
        summary["event_projection_layer_crossover"] = projection.get("layer_crossover")
    if os.path.exists(speed_path):
        timing = json.load(open(speed_path)).get("kernel_timing", {}).get("ways", {})
        # kernel-level: bytes over the time of a CUDA-graph replay (no host work), as a
        # fraction of the copy's, where the capture worked; else of N calls back to back
        for name in ("forward_train", "forward_train_1lane", "backward_detached", "backward_detached_bf16"):
            ways = timing.get(name, {})
            for way in ("graph_replay", "back_to_back"):
                if "fraction_of_copy" in ways.get(way, {}):
                    summary[f"{name}_fraction_of_copy_kernel_level"] = ways[way]["fraction_of_copy"]
                    summary[f"{name}_kernel_level_timed_as"] = way
                    break
        # the A/B of the instances: one lane's time over two lanes' (> 1: two faster)
        for name in ("forward_train", "forward_inference", "backward_detached_bf16"):
            two, one = timing.get(name, {}), timing.get(name + "_1lane", {})
            for way in ("graph_replay", "back_to_back"):
                if "seconds" in two.get(way, {}) and "seconds" in one.get(way, {}):
                    summary[f"{name}_one_lane_over_two"] = one[way]["seconds"] / two[way]["seconds"]
                    break
    precision_path = os.path.join(out, "layer_precision_cuda.json")
    if os.path.exists(precision_path):
        modes = json.load(open(precision_path)).get("modes", {})
        # SRC's training step against nn.GRU's, both in the same precision mode
        summary["layer_gru_over_src_by_mode"] = {mode: r["gru_over_src"]["median"] for mode, r in modes.items()}
    with open(os.path.join(out, "gpu_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    md = [
        f"# srcext on {summary.get('gpu', 'GPU')}",
        "",
        f"torch {summary.get('torch')}, CUDA {summary.get('cuda')}, commit {summary.get('commit')}, "
        f"T={summary.get('T')} B={summary.get('B')} H={summary.get('H')} float32",
        "",
        f"CUDA tests: {summary['pytest_summary']} (passed: {summary['cuda_tests_passed']})",
        "",
        "| figure | measured | target | met |",
        "|---|---|---|---|",
    ]
    for key, (threshold, what) in TARGETS.items():
        value = summary.get(key)
        met = "" if value is None else ("yes" if value >= threshold else "no")
        shown = "n/a" if value is None else f"{value:.2f}"
        md.append(f"| {what} | {shown} | >= {threshold} | {met} |")
    md.append(f"| bf16 vs fp32 recurrence speedup | {summary.get('bf16_speedup_vs_fp32')} | | |")
    with open(os.path.join(out, "gpu_summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results"))
