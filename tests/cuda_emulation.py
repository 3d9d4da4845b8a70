"""Build and load the host emulation of srcext's CUDA kernels (tests/emulation).

The emulation compiles the same ``.cu`` sources as the GPU build with the host compiler and
runs every launch's blocks and threads one after another on the CPU; its ops are
``torch.ops.srcext_cuda_emulation.src_forward`` / ``src_backward`` on CPU tensors, with the
schemas, fakes and (C++) autograd of ``torch.ops.srcext``. The build is cached in ``build/`` of the
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
EMULATION = ROOT / "tests" / "emulation"
NAMESPACE = "srcext_cuda_emulation"


def sanitized() -> bool:
    return os.environ.get("SRCEXT_EMULATION_SANITIZE", "0") not in ("", "0")


def build(namespace: str, source: str, register, name=None, flags=("-O2",), ldflags=()):
    """Compile ``tests/emulation/<source>`` with the host compiler into the extension
    ``name`` (``namespace`` unless given; cached in build/<name>), load it, and give its ops in
    ``torch.ops.<namespace>`` their fakes with ``register`` (srcext's)."""
    from torch.utils import cpp_extension

    name = name or namespace
    directory = ROOT / "build" / name
    directory.mkdir(parents=True, exist_ok=True)
    module = cpp_extension.load(
        name=name,
        sources=[str(EMULATION / source)],
        # The emulation folder first: its cuda_runtime.h stands in for the CUDA runtime's.
        extra_include_paths=[str(EMULATION), str(ROOT / "csrc")],
        extra_cflags=["-DSRCEXT_CUDA_EMULATION", "-fno-math-errno", *flags],
        extra_ldflags=list(ldflags),
        build_directory=str(directory),
        verbose=False,
    )
    register(namespace)
    return module


@functools.cache
def load():
    """The emulation module (built on first use), its ops with their fakes."""
    from srcext.ops import register_op_fakes

    if sanitized():
        sanitize = ["-fsanitize=address,undefined"]
        flags = ["-O1", "-g", "-fno-omit-frame-pointer", *sanitize, "-fno-sanitize-recover=all"]
        return build(NAMESPACE, "src_cuda_emulation.cpp", register_op_fakes, NAMESPACE + "_sanitized", flags, sanitize)
    return build(NAMESPACE, "src_cuda_emulation.cpp", register_op_fakes)


def ops():
    load()
    return getattr(torch.ops, NAMESPACE)


def src_recurrence(u, bias, state, k, detach_recurrent=True, straight_through=True, lengths=None, emit_voltage=False):
    """src_recurrence_fused, on the emulated CUDA kernels."""
    from srcext.ops import run_forward_op

    return run_forward_op(
        ops().src_forward, u, bias, state, k, detach_recurrent, straight_through, lengths, emit_voltage
    )
