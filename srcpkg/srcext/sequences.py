"""Variable-length batches: the lengths argument, PackedSequence in and out, and the
per-sample time reversal of bidirectional layers. All tensors here are time-major (T, B, ...).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


def _check_length_values(lengths: torch.Tensor, steps: int, owner: str) -> None:
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 0 or hi > steps:
        raise ValueError(f"{owner}: lengths must lie in [0, T] = [0, {steps}], got values in [{lo}, {hi}]")


def layer_lengths(lengths, batch: int, steps: int, device: torch.device, owner: str) -> Optional[torch.Tensor]:
    """A layer's ``lengths`` argument (a sequence of ints or an integer tensor of B entries in
    [0, T]) as an int64 tensor on ``device``; a clear error otherwise."""
    if lengths is None:
        return None
    if isinstance(lengths, (list, tuple)):
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in lengths):
            raise TypeError(f"{owner}: lengths must be ints, got {lengths!r}")
        lengths = torch.tensor(lengths, dtype=torch.int64)
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(
            f"{owner}: lengths must be a 1-D integer tensor or a list of ints, got {type(lengths).__name__}"
        )
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"{owner}: lengths must have an integer dtype, got {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(
            f"{owner}: lengths must have shape (B,) = ({batch},), one length per sample, got {tuple(lengths.shape)}"
        )
    # Values are checked eagerly (a sync on CUDA: worth the clear error); a compiled graph cannot
    # branch on them, and the kernels clamp them to [0, T], so none reads out of bounds there.
    if batch > 0 and not torch.compiler.is_compiling():
        _check_length_values(lengths, steps, owner)
    return lengths.to(device=device, dtype=torch.int64)


def check_op_lengths(lengths: Optional[torch.Tensor], u: torch.Tensor) -> None:
    """The ``lengths`` argument of the recurrence (fused op or reference): None or an integer
    (B,) tensor in [0, T] for the drive u (T, B, H); a clear error otherwise.

    The values are checked only where ``lengths`` lies on the CPU and not under torch.compile:
    elsewhere reading them would need a device sync or break the graph. (The fused kernels
    clamp them, so that no value makes them read out of bounds.)
    """
    if lengths is None:
        return
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(f"srcext: lengths must be a tensor or None, got {type(lengths).__name__}")
    if lengths.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"srcext: lengths must have dtype int32 or int64, got {lengths.dtype}")
    T, B = u.shape[0], u.shape[1]
    if lengths.shape != (B,):
        raise ValueError(f"srcext: lengths must have shape (B,) = ({B},), got {tuple(lengths.shape)}")
    if lengths.device.type == "cpu" and B > 0 and not torch.compiler.is_compiling():
        _check_length_values(lengths, T, "srcext")


# The names these had before both lived here (the reference module's check_lengths was the
# op's): still importable.
check_lengths = layer_lengths


def reverse_within_lengths(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """Each sample's first lengths[b] steps in reverse order; the padding stays where it is.

    The index map is its own inverse, so the same call turns the reverse direction's output
    back into input order."""
    if lengths is None:
        return x.flip(0)
    t = torch.arange(x.shape[0], device=x.device).unsqueeze(1)  # (T, 1)
    n = lengths.unsqueeze(0)  # (1, B)
    index = torch.where(t < n, n - 1 - t, t)  # (T, B)
    index = index.reshape(index.shape + (1,) * (x.dim() - 2)).expand_as(x)
    return x.gather(0, index)


def unpack(packed: PackedSequence) -> Tuple[torch.Tensor, torch.Tensor]:
    """The padded time-major batch, in the caller's (unsorted) sample order, and its lengths."""
    return pad_packed_sequence(packed, batch_first=False)


def pack_like(output: torch.Tensor, lengths: torch.Tensor, like: PackedSequence) -> PackedSequence:
    """``output`` (T, B, H), in the caller's sample order, packed as ``like`` is: same
    batch_sizes, sorted_indices and unsorted_indices (what torch.nn.GRU returns)."""
    lengths = lengths.cpu()
    if like.sorted_indices is not None:
        output = output.index_select(1, like.sorted_indices.to(output.device))
        lengths = lengths[like.sorted_indices.cpu()]
    data = pack_padded_sequence(output, lengths, enforce_sorted=True).data
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)


def zero_padding(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """x (T, B, F) with the steps past each sample's length set to 0 (x itself without lengths).

    The kernels never read those steps, but the weight gradient of the input projection is the
    GEMM grad_u^T x over every step: there 0 * NaN (or Inf) in the padding would be NaN, so
    the padding is cleared first, whatever it holds."""
    if lengths is None:
        return x
    valid = within_lengths(x.shape[0], lengths, x.device).unsqueeze(-1)
    return torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device))


def within_lengths(steps: int, lengths: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(T, B) bool on ``device``: step t of sample b lies within its length."""
    return torch.arange(steps, device=device).unsqueeze(1) < lengths.to(device)
