"""Build and load the host emulation of the event-driven projection's CUDA kernels
(tests/emulation/src_events_emulation.cpp), as tests/cuda_emulation.py does for the
recurrence: the same ``.cu`` source compiled by the host compiler, every launch's blocks and
threads run one after another on the CPU. Its ops are
``torch.ops.srcext_events_emulation.*`` on CPU tensors, with the fakes and autograd of
``torch.ops.srcext``'s. Cached in ``build/`` of the checkout."""

from __future__ import annotations

import functools

import torch

from cuda_emulation import build

NAMESPACE = "srcext_events_emulation"


@functools.cache
def load():
    from srcext.ops.events import register_event_formulas

    return build(NAMESPACE, "src_events_emulation.cpp", register_event_formulas)


def ops():
    load()
    return getattr(torch.ops, NAMESPACE)
