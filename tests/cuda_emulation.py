"""Build and load the host emulation of srcext's CUDA kernels (csrc/cuda/emulation).

The emulation compiles the same ``.cu`` sources as the GPU build with the host compiler and
runs every launch's blocks and threads one after another on the CPU; its ops are
``torch.ops.srcext_cuda_emulation.src_forward`` / ``src_backward`` on CPU tensors, with the
schemas, fakes and autograd of ``torch.ops.srcext``. The build is cached in ``build/`` of the
checkout (ninja rebuilds it when a source or header changes). Test-only: the installed
package does not carry it.

``SRCEXT_EMULATION_SANITIZE=1`` builds it with AddressSanitizer and UBSan instead (the
process must then preload the sanitizer runtimes: tests/sanitize_cuda_emulation.sh does).
"""

from __future__ import annotations

import functools
import os
import pathlib

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
EMULATION = ROOT / "csrc" / "cuda" / "emulation"
NAMESPACE = "srcext_cuda_emulation"


def sanitized() -> bool:
    return os.environ.get("SRCEXT_EMULATION_SANITIZE", "0") not in ("", "0")


@functools.cache
def load():
    """The emulation module (built on first use); its ops are registered with autograd."""
    from torch.utils import cpp_extension

    from srcext.ops import register_op_formulas

    name = "srcext_cuda_emulation"
    flags = ["-DSRCEXT_CUDA_EMULATION", "-fno-math-errno"]
    ldflags = []
    if sanitized():
        name += "_sanitized"
        flags += ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
        ldflags += ["-fsanitize=address,undefined"]
    else:
        flags += ["-O2"]
    build = ROOT / "build" / name
    build.mkdir(parents=True, exist_ok=True)
    module = cpp_extension.load(
        name=name,
        sources=[str(EMULATION / "src_cuda_emulation.cpp")],
        # The emulation folder first: its cuda_runtime.h stands in for the CUDA runtime's.
        extra_include_paths=[str(EMULATION), str(ROOT / "csrc")],
        extra_cflags=flags,
        extra_ldflags=ldflags,
        build_directory=str(build),
        verbose=False,
    )
    register_op_formulas(NAMESPACE)
    return module


def ops():
    load()
    return getattr(torch.ops, NAMESPACE)
