"""srcext's build backend: setuptools', compiling against the torch of the environment that pip
installs into, also inside pip's isolated build environment.

srcext's kernels must be compiled against the very torch that will load them. pip builds in an
isolated environment by default, which would either see no torch or download a second one (a
5.5 GB CUDA wheel, maybe another version). This backend:

* puts the target environment's site-packages at the end of the build's import path, so that
  ``import torch`` finds the installed torch while the isolated build tools (setuptools,
  wheel, ninja) still come first; setup.py then compiles the kernels against it;
* where the target environment has no torch (pip installs it with the package), asks for none:
  setup.py then builds the package without compiled kernels, which compile on first import
  against the torch installed by then (srcext/_extension.py). One torch download, not two.

pip runs the backend with the target environment's own interpreter, so ``sysconfig`` names that
environment's site-packages even though pip hides them from ``sys.path``.
``pip install --no-build-isolation .`` needs none of this: torch is already on the path.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig

from setuptools import build_meta as _setuptools


def _target_site_packages() -> list[str]:
    paths = []
    for key in ("purelib", "platlib"):
        path = sysconfig.get_paths()[key]
        if os.path.isdir(path) and path not in paths:
            paths.append(path)
    return paths


def _target_torch() -> str | None:
    """The site-packages folder of the target environment that holds torch, if any."""
    for path in _target_site_packages():
        if os.path.isfile(os.path.join(path, "torch", "__init__.py")):
            return path
    return None


def _torch_importable() -> bool:
    return importlib.util.find_spec("torch") is not None


def _see_target_torch() -> None:
    if _torch_importable():
        return  # no isolation, or torch installed into the build environment
    path = _target_torch()
    if path is not None and path not in sys.path:
        sys.path.append(path)
        print(f"srcext: building against the torch installed in {path}", flush=True)


def _seeing_target_torch(name: str):
    """setuptools' hook `name`, run once the target environment's torch is importable."""

    def hook(*args, **kwargs):
        _see_target_torch()
        return getattr(_setuptools, name)(*args, **kwargs)

    hook.__name__ = name
    return hook


# The PEP 517 hooks: setuptools' own; those that may run setup.py (which imports torch to
# decide what to compile) see the target environment's torch first. An sdist compiles nothing.
get_requires_for_build_wheel = _seeing_target_torch("get_requires_for_build_wheel")
get_requires_for_build_editable = _seeing_target_torch("get_requires_for_build_editable")
prepare_metadata_for_build_wheel = _seeing_target_torch("prepare_metadata_for_build_wheel")
prepare_metadata_for_build_editable = _seeing_target_torch("prepare_metadata_for_build_editable")
build_wheel = _seeing_target_torch("build_wheel")
build_editable = _seeing_target_torch("build_editable")
get_requires_for_build_sdist = _setuptools.get_requires_for_build_sdist
build_sdist = _setuptools.build_sdist
