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


def _has_kernel(device_type: str) -> bool:
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
    if key is None:
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key("srcext::src_forward", key)


def fused_available(device: str | torch.device = "cpu") -> bool:
    """True where the fused kernels can run tensors on ``device``."""
    if _load_error is not None:
        return False
    return _has_kernel(torch.device(device).type)


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
