"""How srcext's kernels are compiled, for the two ways they get built: ahead of time by
setup.py (``pip install .`` where torch is installed), or on first use by
:mod:`srcext._extension` (a package installed without them: built where no torch was visible,
as in an empty environment, or with SRCEXT_KERNELS=first-use; and one whose compiled module
does not load with the torch installed now). No torch import here: setup.py reads this file
before it knows whether there is a torch.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import sys
from typing import List, Tuple

# Where the C++/CUDA sources are: csrc/ in a checkout; srcext/_csrc/ in an installed package
# (setup.py copies them there, so that an install can compile them on first use).
PACKAGED_SOURCES = "_csrc"
# A file every source tree has: how the first-use compile recognises one.
SOURCES_MARKER = "common/src_cell.h"

# csrc/common holds what both op families share, csrc/recurrence and csrc/events one family
# each: its schemas, op and autograd at the top, its kernels per backend in cpu/ and cuda/.
CPU_SOURCES = ("*/*.cpp", "*/cpu/*.cpp")
CUDA_SOURCES = ("*/cuda/*.cpp", "*/cuda/*.cu")
SOURCE_SUFFIXES = (".h", ".cuh", ".cpp", ".cu")
DEFAULT_CUDA_ARCHS = "8.0;8.6;8.9;9.0+PTX"

# No errno and no FP-trap semantics, so that the lane loops of the CPU kernels, with the
# branch-free float math of csrc/common/src_math.h, vectorise (the results are unchanged).
# -g0: no debug information (Python's CFLAGS ask for -g), which took a third of the build time
# of the template-heavy kernels and half of that of the files that include torch.
CXX_FLAGS = ["-O3", "-g0", "-fno-math-errno", "-fno-trapping-math"]
NVCC_FLAGS = ["-O3", "-lineinfo", "--expt-relaxed-constexpr"]


def build_when() -> str:
    """SRCEXT_KERNELS: "install" (compile at install time, the default where torch is
    visible to the build) or "first-use" (ship the sources, compile on first import)."""
    value = os.environ.get("SRCEXT_KERNELS", "install")
    if value not in ("install", "first-use"):
        raise ValueError(f"SRCEXT_KERNELS must be 'install' or 'first-use', got {value!r}")
    return value


def compile_flags() -> Tuple[List[str], List[str]]:
    """(C++ flags, link flags). at::parallel_for is an inline `omp parallel` region: without
    OpenMP it runs serially."""
    cxx, link = list(CXX_FLAGS), []
    if sys.platform.startswith("linux"):
        cxx.append("-fopenmp")
        link.append("-fopenmp")
    return cxx, link


# The longest translation units first (the kernels, one per dtype: bf16 and f16 ~45 s of a
# core each here, f32 ~25 s, the autograd ~22 s): ninja starts a clean build's jobs in the
# order given, and the short ones then fill in around the long ones instead of trailing them
# (with 2 jobs, ~10 s of the CPU build's ~2 minutes).
LONGEST_FIRST = (
    "cuda/*.cu",
    "cpu/src_recurrence_cpu_bf16.cpp",
    "cpu/src_recurrence_cpu_f16.cpp",
    "cpu/src_recurrence_cpu_f32.cpp",
    "src_recurrence_autograd.cpp",
)


def longest_first(paths: List[str]) -> List[str]:
    """``paths`` (of translation units) in the order to compile them: LONGEST_FIRST, then the
    rest in name order."""

    def rank(path: str) -> Tuple[int, str]:
        relative = path.replace(os.sep, "/")
        for i, pattern in enumerate(LONGEST_FIRST):
            if fnmatch.fnmatch(relative, "*" + pattern):
                return i, path
        return len(LONGEST_FIRST), path

    return sorted(paths, key=rank)


def sources(root: str, cuda: bool) -> List[str]:
    """The translation units under ``root`` (a csrc folder), CUDA's when ``cuda``, longest first."""
    patterns = CPU_SOURCES + (CUDA_SOURCES if cuda else ())
    return longest_first([path for pattern in patterns for path in glob.glob(os.path.join(root, pattern))])


def source_files(root: str) -> List[str]:
    """Every source and header under ``root`` except the test-only emulation, relative."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "emulation")
        for name in sorted(files):
            if name.endswith(SOURCE_SUFFIXES):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return found
