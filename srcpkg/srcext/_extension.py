"""Loading of the compiled ops (srcext._C), and what to say when they are missing."""

from __future__ import annotations

import torch

_load_error: Exception | None = None
try:
    from . import _C  # noqa: F401  (importing it registers the srcext ops)
except Exception as exc:  # ImportError, or OSError for a library built against another torch
    _load_error = exc


def extension_loaded() -> bool:
    return _load_error is None


def _device_types_with_kernels() -> frozenset:
    if _load_error is not None:
        return frozenset()
    return frozenset(
        device_type
        for device_type, key in (("cpu", "CPU"), ("cuda", "CUDA"))
        if torch._C._dispatch_has_kernel_for_dispatch_key("srcext::src_forward", key)
    )


# Looked up once here: torch.compile cannot trace the dispatcher query inside forward().
_FUSED_DEVICE_TYPES = _device_types_with_kernels()


def fused_available(device: str | torch.device = "cpu") -> bool:
    """True where the fused kernels can run tensors on ``device``."""
    if _load_error is not None:
        return False
    device_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    return device_type in _FUSED_DEVICE_TYPES


def fused_unavailable_reason(device: str | torch.device = "cpu") -> str:
    device = torch.device(device)
    if _load_error is not None:
        return (
            f"the compiled extension srcext._C could not be loaded ({_load_error!r}); "
            "reinstall with `pip install --no-build-isolation .` in this environment"
        )
    if device.type == "cuda":
        return (
            "srcext was built without CUDA kernels (CPU-only torch, no CUDA toolkit, or "
            "SRCEXT_FORCE_CPU=1 at build time)"
        )
    return f"srcext has no fused kernels for device type '{device.type}'"
