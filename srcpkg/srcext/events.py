"""Event-driven input projection: ``u = s W^T`` and ``dW = grad_u^T s`` from the non-zero
entries of ``s`` only.

The ops (schemas in csrc/src_events.h, kernels in csrc/cpu/src_events_cpu.cpp and
csrc/cuda/src_events.cuh) work on an *event list*, the CSR form of a 2-D input s (R, F) with
R = T * B time-major rows: ``row_ptr`` (R + 1,) int64, ``col`` (nnz,) int64, ``val`` (nnz,).

* ``src_events(s)`` builds it (one pass that also counts);
* ``src_event_matmul(row_ptr, col, val, weight)`` is ``u = S W^T``;
* ``src_event_weight_grad(row_ptr, col, val, grad_u, F)`` is ``grad_u^T S``, deterministic;
* ``src_projection(s, weight, max_density)`` / ``src_projection_weight_grad`` take the dense s,
  build its events, and run the dense GEMM instead when more than ``max_density`` of s is
  non-zero: the count that decides is the pass that builds the events, and every output has a
  static shape, so that the pair compiles (torch.compile fullgraph) with no graph break.

Here: their fakes and autograd (registered at import, and again by the tests for the CUDA
host emulation's namespace), the layer's projection (:func:`input_projection`) and the event
input the layer accepts (:class:`Events`: a torch sparse tensor of any layout, or an event list).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from ._extension import extension_loaded, fused_available
from .export import exporting_onnx

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


# ---- event input ----------------------------------------------------------------------------


@dataclass
class Events:
    """An event list standing for a time-major input (T, B, F): row t * B + b of the CSR
    (``row_ptr``, ``col``, ``val``) is input step t of sample b. What :class:`srcext.SRC`
    consumes without a dense (T, B, F) tensor; make one with :func:`as_events`, or take it
    from :meth:`srcext.data.RateEncoder.events`."""

    row_ptr: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor
    steps: int
    batch: int
    features: int

    @property
    def shape(self):
        return torch.Size((self.steps, self.batch, self.features))

    @property
    def device(self) -> torch.device:
        return self.val.device

    @property
    def dtype(self) -> torch.dtype:
        return self.val.dtype

    def density(self) -> float:
        total = self.steps * self.batch * self.features
        return self.col.numel() / total if total else 0.0

    def rows(self) -> torch.Tensor:
        """The row t * B + b of each event (nnz,)."""
        counts = self.row_ptr.diff()
        return torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)

    def to_dense(self) -> torch.Tensor:
        """The dense (T, B, F) input."""
        dense = self.val.new_zeros(self.steps * self.batch * self.features)
        dense.index_put_((self.rows() * self.features + self.col,), self.val, accumulate=True)
        return dense.view(self.steps, self.batch, self.features)

    def to(self, *args, **kwargs) -> Events:
        """The events on another device and/or in another dtype, with the arguments of
        :meth:`torch.Tensor.to` (``to(dtype)``, ``to(device)``, ``to(device, dtype)``,
        ``non_blocking=``): the dtype is the values'; the indices stay int64."""
        val = self.val.to(*args, **kwargs)
        non_blocking = kwargs.get("non_blocking", False)
        row_ptr = self.row_ptr.to(val.device, non_blocking=non_blocking)
        col = self.col.to(val.device, non_blocking=non_blocking)
        return Events(row_ptr, col, val, self.steps, self.batch, self.features)


# Every torch sparse layout; the compressed ones (batched CSR, ...) are read through COO.
SPARSE_LAYOUTS = (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc)


def is_event_input(x) -> bool:
    return isinstance(x, Events) or (isinstance(x, torch.Tensor) and x.layout in SPARSE_LAYOUTS)


def as_events(x, batch_first: bool = False, owner: str = "SRC") -> Events:
    """The :class:`Events` of a torch sparse tensor (T, B, *features) (or (B, T, *features)
    with batch_first), or of one unbatched sequence (T, F) as a batch of one; an
    :class:`Events` is returned as is.

    Any sparse layout is read (COO, or batched CSR / CSC / BSR / BSC), hybrid ones included
    (a dense value block's zeros are not events). Feature dimensions past the second are
    flattened in the order of ``Tensor.flatten(2)``, which torch does not do for a sparse
    tensor: frames from tonic's ``ToSparseTensor`` (T, C, H, W), stacked to (B, T, C, H, W),
    are an input of batch_first with C * H * W features."""
    if isinstance(x, Events):
        return x
    if x.dim() == 2:  # one unbatched sequence (T, F): as nn.GRU, whatever batch_first says
        x, batch_first = x.unsqueeze(1), False
    if x.dim() < 3:
        raise ValueError(
            f"{owner}: a sparse input must be (T, B, *features) (or (B, T, *features) with batch_first), "
            f"or (T, features) unbatched, got shape {tuple(x.shape)}"
        )
    if x.layout != torch.sparse_coo:
        x = x.to_sparse_coo()
    if x.dense_dim() > 0:
        x = _without_dense_blocks(x)
    if batch_first:
        x = x.transpose(0, 1)
    T, B = x.shape[0], x.shape[1]
    # Coalescing sorts the indices by (t, b, f...): by row t * B + b, then column, as a CSR.
    x = x.coalesce()
    idx = x.indices()
    col = idx[2]
    for dim in range(3, x.dim()):  # row-major, so the order within a row stays ascending
        col = col * x.shape[dim] + idx[dim]
    rows = idx[0] * B + idx[1]
    row_ptr = torch.zeros(T * B + 1, dtype=torch.int64, device=x.device)
    row_ptr[1:] = torch.bincount(rows, minlength=T * B).cumsum(0)
    # The values copied: a view of a sparse tensor's values is a tensor torch.compile cannot trace.
    return Events(row_ptr, col.contiguous(), x.values().clone(), T, B, math.prod(x.shape[2:]))


def _without_dense_blocks(x: torch.Tensor) -> torch.Tensor:
    """A hybrid COO tensor (values with dense dimensions) as a plain one: one entry per
    non-zero element of its value blocks."""
    x = x.coalesce()
    values = x.values()
    flat = values.reshape(values.shape[0], -1)
    entry, inner = flat.nonzero(as_tuple=True)
    inner_idx = torch.stack(torch.unravel_index(inner, values.shape[1:]))
    indices = torch.cat([x.indices()[:, entry], inner_idx])
    # Sorted and unique by construction (coalesced blocks, each read in row-major order).
    return torch.sparse_coo_tensor(indices, flat[entry, inner], x.shape, check_invariants=False, is_coalesced=True)


# ---- the layer's projection -------------------------------------------------------------------


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
    return _EventProjection.apply(s, weight, row_ptr, col, val)


class _EventProjection(torch.autograd.Function):
    """u = s W^T from the events of s; grad_s = grad_u W (dense), grad_W from the events, kept
    from the forward, or, where they take more memory than s (dense enough), rebuilt from s."""

    @staticmethod
    def forward(ctx, s, weight, row_ptr, col, val):
        ctx.num_inputs = s.shape[1]
        keep_events = col.numel() * (col.element_size() + val.element_size()) <= s.numel() * s.element_size()
        need_w = ctx.needs_input_grad[1]
        saved = (row_ptr, col, val) if keep_events and need_w else (None, None, None)
        ctx.save_for_backward(
            *saved, s if need_w and not keep_events else None, weight if ctx.needs_input_grad[0] else None
        )
        return torch.ops.srcext.src_event_matmul(row_ptr, col, val, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_u):
        row_ptr, col, val, s, weight = ctx.saved_tensors
        grad_s = grad_u.mm(weight) if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_u = grad_u.contiguous()
            if row_ptr is not None:  # the events were kept
                grad_w = torch.ops.srcext.src_event_weight_grad(row_ptr, col, val, grad_u, ctx.num_inputs)
            else:
                grad_w = torch.ops.srcext.src_projection_weight_grad(grad_u, s, 1.0)
        return grad_s, grad_w, None, None, None


# ---- fakes and autograd -----------------------------------------------------------------------


def register_event_formulas(namespace: str = "srcext") -> None:
    """Register the fakes and autograd of the event ops ``{namespace}::src_events`` etc.
    Done for ``srcext`` at import; the tests call it once more for the CUDA host emulation."""
    ops = getattr(torch.ops, namespace)

    @torch.library.register_fake(f"{namespace}::src_events")
    def _events_fake(s):
        nnz = torch.library.get_ctx().new_dynamic_size()
        R = s.shape[0]
        return (s.new_empty((R + 1,), dtype=torch.int64), s.new_empty((nnz,), dtype=torch.int64), s.new_empty((nnz,)))

    @torch.library.register_fake(f"{namespace}::src_event_matmul")
    def _matmul_fake(row_ptr, col, val, weight):
        return val.new_empty((row_ptr.shape[0] - 1, weight.shape[0]))

    @torch.library.register_fake(f"{namespace}::src_event_weight_grad")
    def _weight_grad_fake(row_ptr, col, val, grad_u, num_inputs):
        return grad_u.new_empty((grad_u.shape[1], num_inputs))

    @torch.library.register_fake(f"{namespace}::src_projection")
    def _projection_fake(s, weight, max_density):
        return s.new_empty((s.shape[0], weight.shape[0])), s.new_empty((), dtype=torch.int64)

    @torch.library.register_fake(f"{namespace}::src_projection_weight_grad")
    def _projection_weight_grad_fake(grad_u, s, max_density):
        return grad_u.new_empty((grad_u.shape[1], s.shape[1]))

    # src_projection: u = s W^T. grad_s = grad_u W (dense: the input gradient has no sparsity
    # to exploit), grad_W = grad_u^T s by the events of s.
    def _projection_setup(ctx, inputs, output):
        s, weight, max_density = inputs
        ctx.max_density = max_density
        ctx.save_for_backward(s if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        ctx.mark_non_differentiable(output[1])

    def _projection_backward(ctx, grad_u, _grad_count):
        s, weight = ctx.saved_tensors
        grad_s = grad_u.mm(weight) if ctx.needs_input_grad[0] else None
        grad_w = ops.src_projection_weight_grad(grad_u, s, ctx.max_density) if ctx.needs_input_grad[1] else None
        return grad_s, grad_w, None

    torch.library.register_autograd(
        f"{namespace}::src_projection", _projection_backward, setup_context=_projection_setup
    )

    # src_event_matmul: u[r] = sum over the events (r, f, v) of v W[:, f].
    def _matmul_setup(ctx, inputs, output):
        row_ptr, col, val, weight = inputs
        ctx.num_inputs = weight.shape[1]
        ctx.save_for_backward(row_ptr, col, val, weight)

    def _matmul_backward(ctx, grad_u):
        row_ptr, col, val, weight = ctx.saved_tensors
        grad_val = grad_w = None
        if ctx.needs_input_grad[2]:
            # d u[r, h] / d v = W[h, f]: one dot product per event.
            counts = row_ptr.diff()
            rows = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
            grad_val = (grad_u.index_select(0, rows) * weight.t().index_select(0, col)).sum(1)
        if ctx.needs_input_grad[3]:
            grad_w = ops.src_event_weight_grad(row_ptr, col, val, grad_u, ctx.num_inputs)
        return None, None, grad_val, grad_w

    torch.library.register_autograd(f"{namespace}::src_event_matmul", _matmul_backward, setup_context=_matmul_setup)

    def _no_double_backward(ctx, *grads):
        raise RuntimeError(
            "srcext: double backward through the event-driven projection is not supported; use input_projection='dense'"
        )

    for name in ("src_event_weight_grad", "src_projection_weight_grad"):
        torch.library.register_autograd(f"{namespace}::{name}", _no_double_backward)


if extension_loaded():
    register_event_formulas("srcext")
