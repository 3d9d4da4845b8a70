"""The event input of a layer: :class:`Events`, the event list that stands for a time-major
input (T, B, F), and :func:`as_events`, which reads one from a torch sparse tensor.

An event list is the CSR form of a 2-D input s (R, F) with R = T * B time-major rows:
``row_ptr`` (R + 1,) int64, ``col`` (nnz,) int64, ``val`` (nnz,). The ops that work on it
(schemas in csrc/events/src_events_schemas.h; kernels in csrc/events/cpu and csrc/events/cuda):

* ``src_events(s)`` builds it (one pass that also counts);
* ``src_event_matmul(row_ptr, col, val, weight)`` is ``u = S W^T``;
* ``src_event_weight_grad(row_ptr, col, val, grad_u, F)`` is ``grad_u^T S``, deterministic;
* ``src_projection(s, weight, max_density)`` / ``src_projection_weight_grad`` take the dense s,
  build its events, and run the dense GEMM instead when more than ``max_density`` of s is
  non-zero: the count that decides is the pass that builds the events, and every output has a
  static shape, so that the pair compiles (torch.compile fullgraph) with no graph break.

Their fakes and autograd: :mod:`srcext.ops.events`. Which projection a layer runs (dense GEMM
or events) and the measured crossovers: :mod:`srcext.projection`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


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


# Names that lived here before the projection and the ops' formulas got modules of their own
# (srcext.projection, srcext.ops.events): still importable from here.
_MOVED = {
    "register_event_formulas": "srcext.ops.events",
    **{
        name: "srcext.projection"
        for name in (
            "PROJECTIONS",
            "CROSSOVER",
            "EVENT_LIST_CROSSOVER",
            "SMALL_INPUT",
            "ROW_SAMPLE",
            "DENSE_MARGIN",
            "crossover",
            "validate_projection",
            "autocast_enabled",
            "event_projection_available",
            "small_eager_input",
            "input_projection",
        )
    },
}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
