"""Build of srcext's compiled ops (srcext._C) against the torch installed in this environment.

``pip install .`` builds through tools/build_backend.py, which compiles against the torch of
the environment being installed into. Where no torch is visible to the build (an empty
environment: pip installs torch with the package), or with SRCEXT_KERNELS=first-use, the
package is installed without compiled kernels and compiles them on first import instead
(srcext/_extension.py, cached). Either way the sources travel in the package (srcext/_csrc).
The sources and flags: srcpkg/srcext/_build.py.

Environment variables:
  SRCEXT_KERNELS=first-use compile the kernels on first import, not now.
  SRCEXT_FORCE_CPU=1       build the CPU kernels only, even where CUDA is available.
  TORCH_CUDA_ARCH_LIST     GPU architectures (default: 8.0;8.6;8.9;9.0+PTX).
  MAX_JOBS                 parallel compile jobs (ninja).
"""

import importlib.util
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")


def load_build_config():
    # By path: importing the srcext package would import torch.
    spec = importlib.util.spec_from_file_location("srcext_build", os.path.join(HERE, "srcpkg", "srcext", "_build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_build_config()


class BuildPyWithSources(build_py):
    """Copies csrc/ into the package as srcext/_csrc, for a compile on first use."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "srcext", build.PACKAGED_SOURCES)
        # A build folder reused after the sources moved or were removed must not ship the old
        # files too (a first-use compile would build them all).
        shutil.rmtree(target, ignore_errors=True)
        for relative in build.source_files(CSRC):
            destination = os.path.join(target, relative)
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            shutil.copyfile(os.path.join(CSRC, relative), destination)


def want_cuda(torch, cpp_extension):
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
    """The compiled extension, or none (and its build command) where the kernels are to be
    compiled on first use."""
    if build.build_when() == "first-use":
        print("srcext: SRCEXT_KERNELS=first-use: the kernels compile on first import")
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:  # no torch visible: an empty environment
        print(
            "srcext: no torch visible to this build (pip installs it with the package): the "
            "kernels compile on first import, against the torch installed then"
        )
        return [], {}
    cxx_flags, link_flags = build.compile_flags()
    use_cuda, why = want_cuda(torch, cpp_extension)
    compile_args = {"cxx": cxx_flags}
    sources = [os.path.relpath(p, HERE) for p in build.sources(CSRC, use_cuda)]
    if use_cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", build.DEFAULT_CUDA_ARCHS)
        print(f"srcext: building CPU and CUDA kernels ({why}; archs {os.environ['TORCH_CUDA_ARCH_LIST']})")
        compile_args["nvcc"] = list(build.NVCC_FLAGS)
    else:
        print(f"srcext: building CPU kernels only ({why})")
    extension = cpp_extension.CUDAExtension if use_cuda else cpp_extension.CppExtension

    class BuildExtension(cpp_extension.BuildExtension):
        """torch's, compiling the longest translation units first (distutils sorts the sources
        by name before it hands them to the compiler; see _build.LONGEST_FIRST)."""

        def build_extension(self, ext):
            compile_sorted = self.compiler.compile

            def compile_longest_first(sources, *args, **kwargs):
                return compile_sorted(build.longest_first(list(sources)), *args, **kwargs)

            self.compiler.compile = compile_longest_first
            try:
                super().build_extension(ext)
            finally:
                self.compiler.compile = compile_sorted

    module = extension(
        "srcext._C",
        sources,
        include_dirs=[CSRC],
        extra_link_args=link_flags,
        extra_compile_args=compile_args,
    )
    return [module], {"build_ext": BuildExtension}


ext_modules, commands = extensions()
setup(ext_modules=ext_modules, cmdclass={"build_py": BuildPyWithSources, **commands})
