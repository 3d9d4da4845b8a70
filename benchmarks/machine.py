"""What a benchmark ran on, for its JSON and its report; and what the benchmark scripts share:
contenders timed in interleaved rounds (wall_time, event_time, interleaved), integer options, JSON output.

The CPU changes results by multiples, and this project's development machine has changed under
it: an Intel CPU with AVX-512 and AMX (native bfloat16 GEMMs) and an AMD EPYC with AVX2 only
(where a bfloat16 GEMM is ~25x slower than there and slower than float32). "x86_64", all that
`platform.processor()` gives on Linux, tells them apart no better than nothing.
"""

import json
import os
import platform
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository's


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def describe(device) -> dict:
    """device (its name), and for a CPU the vector extension ATen's kernels use and the cores,
    for a GPU its compute capability."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return {"device": torch.cuda.get_device_name(device), "compute_capability": f"sm_{major}{minor}"}
    capability = torch.backends.cpu.get_cpu_capability()
    return {"device": cpu_model(), "cpu_capability": capability, "cpu_cores": os.cpu_count()}


def label(results: dict) -> str:
    """One line naming the machine of a results dict (older files have `device` only)."""
    extra = [results[k] for k in ("cpu_capability", "compute_capability") if results.get(k)]
    if results.get("cpu_cores"):
        extra.append(f"{results['cpu_cores']} cores")
    return results["device"] + (f" ({', '.join(extra)})" if extra else "")


def git_commit() -> str:
    """The short commit of the sources measured: SRCEXT_COMMIT where the sources travelled
    without their git history (a lent GPU machine), else git's, else "unknown"."""
    try:
        return subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, stderr=subprocess.DEVNULL, text=True
        ).strip()
    except Exception:
        return os.environ.get("SRCEXT_COMMIT", "unknown")


def command_line(script: str, argv=None) -> str:
    """The command that produced a result (its arguments argv, by default this process's), as it
    could be typed again elsewhere: paths inside the repository relative to it, other absolute
    paths by their file name alone (a machine's folders are no part of a result;
    tests/test_committed_results.py checks)."""

    def portable(arg: str) -> str:
        flag, eq, value = arg.rpartition("=") if arg.startswith("--") and "=" in arg else ("", "", arg)
        if os.path.isabs(value):
            rel = os.path.relpath(value, ROOT)
            value = os.path.basename(value) if rel.startswith("..") else rel
        return flag + eq + value

    return " ".join(["python", script] + [portable(a) for a in (sys.argv[1:] if argv is None else argv)])


def int_options(parser, **defaults) -> None:
    """An integer option of the parser for each keyword, with its default (input_size: --input-size)."""
    for name, default in defaults.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=default)


def wall_time(call, calls: int = 1, sync=lambda: None) -> float:
    """Seconds of a call by perf_counter: the mean of calls calls back to back, sync() (a device's
    synchronisation) run before and after them."""
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    sync()
    return (time.perf_counter() - start) / calls


def event_time(call) -> float:
    """Seconds of one call on the GPU, by CUDA events recorded around it, the device
    synchronised first (earlier work does not run into its interval)."""
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    call()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


def call_timer(device):
    """How one call alone is timed on device: CUDA events on a GPU, perf_counter on the CPU."""
    return event_time if torch.device(device).type == "cuda" else wall_time


def interleaved(contenders: dict, rounds: int, warmup: int, timed=wall_time) -> dict:
    """Seconds of each contender (a callable) per round, timed(contender) timing it, the first
    warmup rounds left out. Within a round the order rotates (with two contenders: alternates),
    so that none is always the first or the last to run."""
    names = list(contenders)
    times = {name: [] for name in names}
    for r in range(warmup + rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds = timed(contenders[name])
            if r >= warmup:
                times[name].append(seconds)
    return times


def write_json(path: str, results: dict, indent: int) -> None:
    """results into path, its folder made where missing."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=indent)
