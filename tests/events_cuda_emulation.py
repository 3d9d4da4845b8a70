"""Build and load the host emulation of the event-driven projection's CUDA kernels
(csrc/cuda/emulation/src_events_emulation.cpp), as tests/cuda_emulation.py does for the
recurrence: the same ``.cu`` source compiled by the host compiler, every launch's blocks and
threads run one after another on the CPU. Its ops are
``torch.ops.srcext_events_emulation.*`` on CPU tensors, with the fakes and autograd of
``torch.ops.srcext``'s. Cached in ``build/`` of the checkout."""

from __future__ import annotations

import functools

import torch

from cuda_emulation import EMULATION, ROOT

NAMESPACE = "srcext_events_emulation"


@functools.cache
def load():
    from torch.utils import cpp_extension

    from srcext.events import register_event_formulas

    build = ROOT / "build" / NAMESPACE
    build.mkdir(parents=True, exist_ok=True)
    module = cpp_extension.load(
        name=NAMESPACE,
        sources=[str(EMULATION / "src_events_emulation.cpp")],
        # The emulation folder first: its cuda_runtime.h stands in for the CUDA runtime's.
        extra_include_paths=[str(EMULATION), str(ROOT / "csrc")],
        extra_cflags=["-DSRCEXT_CUDA_EMULATION", "-fno-math-errno", "-O2"],
        build_directory=str(build),
        verbose=False,
    )
    register_event_formulas(NAMESPACE)
    return module


def ops():
    load()
    return getattr(torch.ops, NAMESPACE)
