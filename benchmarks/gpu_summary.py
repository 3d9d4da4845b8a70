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
# The figures taken from speed_cuda.json, in order: summary key: its section/key there (a
# bare key: the top level).
FROM_SPEED = {
    "gpu": "device",
    **{key: key for key in ("torch", "cuda", "commit", "T", "B", "H")},
    "recurrence_speedup_vs_reference": "ratios/fwd_bwd_detached_vs_reference",
    "recurrence_speedup_vs_compiled": "ratios/fwd_bwd_detached_vs_compiled",
    "recurrence_bptt_speedup_vs_reference": "ratios/fwd_bwd_bptt_vs_reference",
    "recurrence_forward_speedup_vs_reference": "ratios/forward_detached_vs_reference",
    "bandwidth_fraction_forward": "bandwidth/forward_fraction_of_copy",
    "bandwidth_fraction_backward": "bandwidth/backward_fraction_of_copy",
    "copy_bandwidth_bytes_per_s": "bandwidth/copy_bytes_per_s",
    "layer_speedup_vs_gru": "ratios/layer_step_vs_gru",
    **{key: key for key in ("bf16_speedup_vs_fp32", "peak_memory_bytes_src_layer_step")},
    **{key: key for key in ("peak_memory_bytes_gru_layer_step", "timings_s")},
}
WAYS = ("graph_replay", "back_to_back")  # how speed.py timed a kernel, the preferred first


def main(out: str) -> None:
    def read(name: str, parse=lambda f: f.read().splitlines()):
        """parse(the file OUT/name) (by default its lines), None where the run wrote none."""
        path = os.path.join(out, name)
        if os.path.exists(path):
            with open(path) as f:
                return parse(f)

    stages = {name: int(code) for name, _, code in (line.strip().partition("=") for line in read("stages.txt") or [])}
    summary = {"stages_exit_codes": stages}
    lines = read("pytest_cuda.log") or []
    result_lines = [line for line in lines if re.search(r"\d+ (passed|failed|error)", line)]
    summary["pytest_summary"] = result_lines[-1].strip("= ") if result_lines else "no pytest summary"
    summary["cuda_tests_passed"] = stages.get("cuda_tests") == 0 and "passed" in summary["pytest_summary"]
    speed = read("speed_cuda.json", json.load)
    if speed is not None:
        for key, where in FROM_SPEED.items():
            section, _, name = where.rpartition("/")
            summary[key] = (speed.get(section, {}) if section else speed).get(name)
    projection = read("projection_cuda.json", json.load)
    if projection is not None:
        # Where the event path starts to win, per dtype, against the crossover the layer uses now.
        summary["event_projection_crossover"] = {
            dtype: rows.get("crossover") for dtype, rows in projection.get("projection", {}).items()
        }
        summary["event_projection_layer_crossover"] = projection.get("layer_crossover")
    if speed is not None:
        timing = speed.get("kernel_timing", {}).get("ways", {})
        # kernel-level: bytes over the time of a CUDA-graph replay (no host work), as a
        # fraction of the copy's, where the capture worked; else of N calls back to back
        for name in ("forward_train", "forward_train_1lane", "backward_detached", "backward_detached_bf16"):
            ways = timing.get(name, {})
            way = next((way for way in WAYS if "fraction_of_copy" in ways.get(way, {})), None)
            if way:
                summary[f"{name}_fraction_of_copy_kernel_level"] = ways[way]["fraction_of_copy"]
                summary[f"{name}_kernel_level_timed_as"] = way
        # the A/B of the instances: one lane's time over two lanes' (> 1: two faster)
        for name in ("forward_train", "forward_inference", "backward_detached_bf16"):
            two, one = timing.get(name, {}), timing.get(name + "_1lane", {})
            way = next((way for way in WAYS if "seconds" in two.get(way, {}) and "seconds" in one.get(way, {})), None)
            if way:
                summary[f"{name}_one_lane_over_two"] = one[way]["seconds"] / two[way]["seconds"]
    precision = read("layer_precision_cuda.json", json.load)
    if precision is not None:
        # SRC's training step against nn.GRU's, both in the same precision mode
        modes = precision.get("modes", {})
        summary["layer_gru_over_src_by_mode"] = {mode: r["gru_over_src"]["median"] for mode, r in modes.items()}
    with open(os.path.join(out, "gpu_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    md = [  # (a line ending in \n: a blank line after it)
        f"# srcext on {summary.get('gpu', 'GPU')}\n",
        f"torch {summary.get('torch')}, CUDA {summary.get('cuda')}, commit {summary.get('commit')}, "
        f"T={summary.get('T')} B={summary.get('B')} H={summary.get('H')} float32\n",
        f"CUDA tests: {summary['pytest_summary']} (passed: {summary['cuda_tests_passed']})\n",
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
