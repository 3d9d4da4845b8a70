"""Build of srcext's compiled ops (srcext._C) against the torch installed in this environment.

Install with ``pip install --no-build-isolation .``: the extension must be compiled against
the very torch that will load it, so pip must not build it in an isolated environment with
a freshly downloaded torch.

Environment variables:
  SRCEXT_FORCE_CPU=1       build the CPU kernels only, even where CUDA is available.
  TORCH_CUDA_ARCH_LIST     GPU architectures (default: 8.0;8.6;8.9;9.0+PTX).
  MAX_JOBS                 parallel compile jobs (ninja).
"""

import glob
import os
import sys

from setuptools import setup

try:
    import torch
    from torch.utils import cpp_extension
except ImportError:  # pip's isolated build environment has no torch
    sys.stderr.write(
        "\n"
        "srcext compiles its kernels against the PyTorch installed in your environment, and\n"
        "none is visible to this build (pip builds in an isolated environment by default).\n"
        "Install torch first, then run:\n\n"
        "    pip install --no-build-isolation .\n\n"
    )
    sys.exit(1)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CUDA_ARCHS = "8.0;8.6;8.9;9.0+PTX"


def want_cuda():
    if os.environ.get("SRCEXT_FORCE_CPU", "0") not in ("", "0"):
        return False, "SRCEXT_FORCE_CPU is set"
    if torch.version.cuda is None:
        return False, "this torch is a CPU-only build"
    home = cpp_extension.CUDA_HOME
    if home is None:
        return False, "no CUDA toolkit found (set CUDA_HOME to build the CUDA kernels)"
    if not os.path.exists(os.path.join(home, "include", "cuda_runtime.h")):
        # e.g. nvcc on PATH is a wrapper script outside the toolkit
        return False, (
            f"CUDA_HOME={home} holds no CUDA toolkit (no include/cuda_runtime.h); "
            "set CUDA_HOME to the toolkit's folder to build the CUDA kernels"
        )
    return True, f"CUDA {torch.version.cuda}, toolkit at {cpp_extension.CUDA_HOME}"


def extensions():
    sources = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    # No errno and no FP-trap semantics, so that the lane loops of the CPU kernels, with the
    # branch-free float math of csrc/src_math.h, vectorise (the results are unchanged).
    # -g0: no debug information (Python's CFLAGS ask for -g), which took a third of the build
    # time of the template-heavy kernels and half of that of the files that include torch.
    cxx_flags = ["-O3", "-g0", "-fno-math-errno", "-fno-trapping-math"]
    # at::parallel_for is an inline `omp parallel` region: without OpenMP it runs serially.
    link_flags = []
    if sys.platform.startswith("linux"):
        cxx_flags.append("-fopenmp")
        link_flags.append("-fopenmp")
    use_cuda, why = want_cuda()
    compile_args = {"cxx": cxx_flags}
    if use_cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)
        print(f"srcext: building CPU and CUDA kernels ({why}; archs {os.environ['TORCH_CUDA_ARCH_LIST']})")
        sources += sorted(glob.glob("csrc/cuda/*.cpp")) + sorted(glob.glob("csrc/cuda/*.cu"))
        compile_args["nvcc"] = ["-O3", "-lineinfo", "--expt-relaxed-constexpr"]
    else:
        print(f"srcext: building CPU kernels only ({why})")
    extension = cpp_extension.CUDAExtension if use_cuda else cpp_extension.CppExtension
    return [
        extension(
            "srcext._C",
            sources,
            include_dirs=[os.path.join(HERE, "csrc")],
            extra_link_args=link_flags,
            extra_compile_args=compile_args,
        )
    ]


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": cpp_extension.BuildExtension},
)
