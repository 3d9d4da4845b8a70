"""Which projection ``u = x W^T`` a layer runs for its input: the dense GEMM, or the
event-driven one (:mod:`srcext.events`, ops in :mod:`srcext.ops.events`) that reads only the
non-zero entries of x; and the crossover densities, measured, that decide between them.
"""

from __future__ import annotations

from typing import Optional

import torch

from ._extension import extension_loaded, fused_available
from .events import Events
from .export import exporting_onnx
from .ops.events import EventProjection

PROJECTIONS = ("auto", "dense", "sparse")

# The density (fraction of non-zero inputs) below which "auto" runs the event-driven
# projection, per device type and dtype of the projection.
# CPU: measured with benchmarks/projection_bench.py (speed.py --projection) on the development
# machine (AMD EPYC Zen 2, AVX2, 2 cores; docs/events.md): forward + weight gradient from a
# dense input tie with the float32 GEMM at ~29 % on a loaded machine, and are still 1.2x faster
# at 30 % on a quiet one after the build was made branch-free (0.25 taken, float64 alike); the
# bfloat16 GEMM (no native bf16 on AVX2) is 11x slower than the events still at 30 % and
# float16's 8x (0.5 taken for both). A CPU with AVX-512 BF16 / AMX would lower these.
# CUDA: never (auto is the GEMM). Measured on an H200 (benchmarks/results/h200/projection_cuda
# .json): building the events of a dense input and projecting them never beat the GEMM, in
# float32 (0.8x at 0.5 %, 0.6x at 3 %) or bfloat16 (0.1x), and the pass that counts them cost
# auto 0.2 ms over the GEMM's 0.6 ms (float32) and 0.1 ms (bfloat16) even where it then chose
# the GEMM; float16 runs bfloat16's tensor-core GEMM, float64 is for gradient checks. The count
# is also a device sync, which a CUDA graph cannot capture.
CROSSOVER = {
    ("cpu", torch.float64): 0.25,
    ("cpu", torch.float32): 0.25,
    ("cpu", torch.bfloat16): 0.5,
    ("cpu", torch.float16): 0.5,
    ("cuda", torch.float64): 0.0,
    ("cuda", torch.float32): 0.0,
    ("cuda", torch.bfloat16): 0.0,
    ("cuda", torch.float16): 0.0,
}


# The density below which "auto" projects an input *given as events* (Events, a sparse tensor)
# from its list; above it the list is made dense and the GEMM runs. No events to build here, and
# the density is the list's length (no device sync). Measured from an event list (docs/events.md):
# CPU: the events beat the GEMM at every measured density (1.4x at 30 % in float32, 14x in
# bfloat16), so always. H200 (projection_cuda.json): float32 1.8x at 0.5 %, 1.6x at 1 %, 1.0x at
# 3 % (0.02 taken; float64, not measured, alike); bfloat16 never (0.3x at 0.5 %: its tensor-core
# GEMM takes 0.1 ms), float16 alike.
EVENT_LIST_CROSSOVER = {
    **{("cpu", dtype): 1.0 for dtype in (torch.float64, torch.float32, torch.bfloat16, torch.float16)},
    **{("cuda", dtype): 0.02 for dtype in (torch.float64, torch.float32)},
    **{("cuda", dtype): 0.0 for dtype in (torch.bfloat16, torch.float16)},
}


# Below this many input elements "auto" takes the GEMM without counting the events: there the
# GEMM costs a few microseconds whatever the density, and counting and building the events are
# two more op calls, the larger cost of a streaming step or a small batch (a T=1 step of a
# batch of 8 with 64 features spent a quarter of its host time there). Not a measured crossover:
# chosen well below the sizes the crossovers above were measured at.
SMALL_INPUT = 16384


def crossover(device, dtype: torch.dtype = torch.float32, event_list: bool = False) -> float:
    """The density below which input_projection="auto" computes from the events: of a dense
    input (CROSSOVER), or of an input given as events (``event_list``: EVENT_LIST_CROSSOVER)."""
    table = EVENT_LIST_CROSSOVER if event_list else CROSSOVER
    return table.get((torch.device(device).type, dtype), 0.0)


def validate_projection(mode: str, owner: str = "SRC") -> str:
    if mode not in PROJECTIONS:
        raise ValueError(f"{owner}: input_projection must be one of {', '.join(PROJECTIONS)}, got {mode!r}")
    return mode


def autocast_enabled(device_type: str) -> bool:
    """torch.is_autocast_enabled, False for device types autocast does not know (e.g. meta,
    where torch raises)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:
        return False


def _functorch_wrapped(*tensors: torch.Tensor) -> bool:
    """Whether any tensor is a torch.func (grad, vmap, jvp) wrapper (never while torch.compile
    traces, which cannot call the check)."""
    if torch.compiler.is_compiling():
        return False
    return any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)


def _autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    if autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def event_projection_available(device: torch.device) -> bool:
    return extension_loaded() and fused_available(device) and torch.device(device).type in ("cpu", "cuda")


def small_eager_input(x: torch.Tensor) -> bool:
    """At most SMALL_INPUT elements, outside torch.compile and export (where the size is
    symbolic: a guard on it would recompile, or bound a dynamic dimension)."""
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return False
    return x.numel() <= SMALL_INPUT


def input_projection(x, weight: torch.Tensor, mode: str = "auto") -> torch.Tensor:
    """``u = x W^T`` (T, B, H) of a layer's input: dense x (T, B, F) or :class:`Events`.

    ``mode``: "dense" (one GEMM, as torch.nn.functional.linear), "sparse" (from the events of
    x) or "auto" (events when at most :func:`crossover` of x is non-zero; the count is part of
    the pass that builds the events; for :class:`Events` the list's own density against the
    event-list crossover; eager inputs of at most SMALL_INPUT elements: the GEMM). Under autocast,
    x and W are cast to the autocast dtype as the GEMM would be, so that u has the same dtype on
    every path."""
    if isinstance(x, torch.Tensor) and (mode == "dense" or (mode == "auto" and small_eager_input(x))):
        return torch.nn.functional.linear(x, weight)
    available = event_projection_available(weight.device)
    if mode == "sparse" and not available:
        raise RuntimeError(f"input_projection='sparse' needs the compiled srcext ops for {weight.device}")
    if isinstance(x, Events):
        low = _autocast_dtype(weight.device.type)
        dtype = low or weight.dtype
        use_events = available and (
            mode == "sparse" or (mode == "auto" and x.density() <= crossover(weight.device, dtype, event_list=True))
        )
        if not use_events:
            dense = x.to_dense()  # under autocast, linear casts it as it casts any input
            return torch.nn.functional.linear(dense if low is not None else dense.to(weight.dtype), weight)
        if low is not None:
            x, weight = x.to(low), weight.to(low)
        elif x.dtype != weight.dtype:
            x = x.to(weight.dtype)
        u = torch.ops.srcext.src_event_matmul(x.row_ptr, x.col, x.val, weight)
        return u.view(x.steps, x.batch, weight.shape[0])
    if mode == "dense" or not available or _functorch_wrapped(x, weight) or exporting_onnx():
        # (under torch.func transforms the event path's data-dependent counting cannot run;
        # exporters need the plain GEMM)
        return torch.nn.functional.linear(x, weight)
    low = _autocast_dtype(x.device.type)
    if low is not None:
        x, weight = x.to(low), weight.to(low)
    T, B, F = x.shape
    max_density = 1.0 if mode == "sparse" else crossover(x.device, x.dtype)
    if max_density <= 0.0:  # "auto" where the events never pay (a GPU): the GEMM, with no count
        return torch.nn.functional.linear(x, weight)
    s = x.reshape(T * B, F)
    if torch.compiler.is_compiling():
        # Static shapes: the op decides dense or events inside, and rebuilds the events in
        # the backward.
        u, _count = torch.ops.srcext.src_projection(s, weight, max_density)
    else:
        u = _eager_projection(s, weight, max_density)
    return u.view(T, B, weight.shape[0])


# Rows of s sampled (one in ROW_SAMPLE) to tell a clearly too-dense input before building its
# events; DENSE_MARGIN: how far above the crossover the sample's density must be.
ROW_SAMPLE = 16
DENSE_MARGIN = 2.0


def _eager_projection(s: torch.Tensor, weight: torch.Tensor, max_density: float) -> torch.Tensor:
    """Outside torch.compile: the events of s built once and kept for the weight gradient
    (src_projection rebuilds them in the backward, a second pass over s, so as to keep static
    shapes). Under "auto" a sample of the rows first tells a clearly dense input (dense GEMM at
    once); otherwise the events are built and their exact count decides."""
    total = s.numel()
    if max_density < 1.0 and s.shape[0] > ROW_SAMPLE:
        sample = s[::ROW_SAMPLE]
        if torch.count_nonzero(sample).item() > DENSE_MARGIN * max_density * sample.numel():
            return torch.nn.functional.linear(s, weight)
    row_ptr, col, val = torch.ops.srcext.src_events(s.detach())  # the values carry no gradient
    if col.numel() > max_density * total:
        return torch.nn.functional.linear(s, weight)
    return EventProjection.apply(s, weight, row_ptr, col, val)
