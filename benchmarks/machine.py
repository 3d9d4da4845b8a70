"""What a benchmark ran on, for its JSON and its report.

The CPU changes results by multiples, and this project's development machine has changed under
it: an Intel CPU with AVX-512 and AMX (native bfloat16 GEMMs) and an AMD EPYC with AVX2 only
(where a bfloat16 GEMM is ~25x slower than there and slower than float32). "x86_64", all that
`platform.processor()` gives on Linux, tells them apart no better than nothing.
"""

from __future__ import annotations

import os
import platform
import subprocess

import torch


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device) -> dict:
    """device (its name), and for a CPU the vector extension ATen's kernels use and the cores,
    for a GPU its compute capability."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return {"device": torch.cuda.get_device_name(device), "compute_capability": f"sm_{major}{minor}"}
    return {
        "device": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_cores": os.cpu_count(),
    }


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
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            stderr=subprocess.DEVNULL,
            text=True,
        ).strip()
    except Exception:
        return os.environ.get("SRCEXT_COMMIT", "unknown")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command_line(script: str, argv) -> str:
    """The command that produced a result, as it could be typed again elsewhere: paths inside the
    repository relative to it, other absolute paths by their file name alone (a machine's
    folders are no part of a result; tests/test_committed_results.py checks)."""

    def portable(arg: str) -> str:
        flag, eq, value = arg.rpartition("=") if arg.startswith("--") and "=" in arg else ("", "", arg)
        if os.path.isabs(value):
            rel = os.path.relpath(value, ROOT)
            value = os.path.basename(value) if rel.startswith("..") else rel
        return flag + eq + value

    return " ".join(["python", script] + [portable(a) for a in argv])
