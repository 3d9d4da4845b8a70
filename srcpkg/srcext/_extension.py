"""Loading of the compiled ops (srcext._C), compiling them on first use where the package was
installed without them, and what to say when they are missing."""

from __future__ import annotations

import hashlib
import os
import sys
import time

import torch

from . import _build

_load_error: Exception | None = None
try:
    from . import _C  # noqa: F401  (importing it registers the srcext ops)
except Exception as exc:  # ImportError, or OSError for a library built against another torch
    _load_error = exc


def _source_root() -> str | None:
    """The kernels' sources: packaged with an install (srcext/_csrc), or a checkout's csrc/."""
    here = os.path.dirname(os.path.abspath(__file__))
    for root in (os.path.join(here, _build.PACKAGED_SOURCES), os.path.join(here, "..", "..", "csrc")):
        if os.path.isfile(os.path.join(root, _build.SOURCES_MARKER)):
            return os.path.normpath(root)
    return None


def _cuda_toolkit_usable() -> bool:
    from torch.utils import cpp_extension

    home = cpp_extension.CUDA_HOME
    return home is not None and os.path.exists(os.path.join(home, "include", "cuda_runtime.h"))


def _compile_on_first_use(root: str):
    """Compile the kernels under ``root`` against this torch (CUDA's too where a GPU and a
    toolkit are present), cached per torch version, device kind and sources, and load them."""
    from torch.utils import cpp_extension

    force_cpu = os.environ.get("SRCEXT_FORCE_CPU", "0") not in ("", "0")
    cuda = not force_cpu and torch.version.cuda is not None and torch.cuda.is_available() and _cuda_toolkit_usable()
    digest = hashlib.sha256()
    for name in [torch.__version__, str(torch.version.cuda), str(cuda), os.environ.get("TORCH_CUDA_ARCH_LIST", "")]:
        digest.update(name.encode())
    for relative in _build.source_files(root):
        digest.update(relative.encode())
        with open(os.path.join(root, relative), "rb") as f:
            digest.update(f.read())
    cache = os.environ.get("SRCEXT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "srcext"
    )
    kind = "cuda" if cuda else "cpu"
    directory = os.path.join(cache, f"torch{torch.__version__}-{kind}-{digest.hexdigest()[:16]}")
    os.makedirs(directory, exist_ok=True)
    fresh = not any(name.endswith(".so") or name.endswith(".pyd") for name in os.listdir(directory))
    if fresh:
        print(
            f"srcext: compiling the fused {'CPU and CUDA' if cuda else 'CPU'} kernels for torch "
            f"{torch.__version__} on first use (once; about 2 minutes of 2 cores for the CPU "
            f"kernels), into {directory}",
            file=sys.stderr,
            flush=True,
        )
    start = time.monotonic()
    cxx, link = _build.compile_flags()
    module = cpp_extension.load(
        name="_C",
        sources=_build.sources(root, cuda),
        extra_cflags=cxx,
        extra_ldflags=link,
        extra_cuda_cflags=list(_build.NVCC_FLAGS) if cuda else None,
        extra_include_paths=[root],
        build_directory=directory,
        with_cuda=cuda,
        verbose=fresh,  # ninja's [k/n] lines name each file as it compiles
    )
    if fresh:
        print(f"srcext: kernels compiled in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    return module


_compile_error: Exception | None = None
if _load_error is not None and os.environ.get("SRCEXT_NO_COMPILE", "0") in ("", "0"):
    _root = _source_root()
    if _root is not None:
        try:
            sys.modules[__name__.rsplit(".", 1)[0] + "._C"] = _compile_on_first_use(_root)
            _load_error = None
        except Exception as exc:  # no compiler, a failed build: the reference backend still works
            _compile_error = exc


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
        compiled = f"; compiling it on first use failed: {_compile_error!r}" if _compile_error is not None else ""
        return (
            f"the compiled extension srcext._C could not be loaded ({_load_error!r}){compiled}; "
            "reinstall with `pip install .` in this environment"
        )
    if device.type == "cuda":
        return (
            "srcext was built without CUDA kernels (CPU-only torch, no CUDA toolkit, or "
            "SRCEXT_FORCE_CPU=1 at build time)"
        )
    return f"srcext has no fused kernels for device type '{device.type}'"
