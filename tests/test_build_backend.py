"""tools/build_backend.py, pip's build backend for srcext: it lets the isolated build import the
target's torch, and never asks for a torch of its own (without one the package compiles its
kernels on first use: srcext/_extension.py). The build itself is exercised by CI's
`pip install .`, its wheel install and its first-use wheel."""

import importlib.util
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def backend(monkeypatch):
    spec = importlib.util.spec_from_file_location("srcext_build_backend", ROOT / "tools" / "build_backend.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module._setuptools, "get_requires_for_build_wheel", lambda config=None: ["wheel"])
    return module


def test_torch_is_never_a_build_requirement(backend, monkeypatch):
    monkeypatch.setattr(backend, "_torch_importable", lambda: False)
    monkeypatch.setattr(backend, "_target_torch", lambda: None)
    assert backend.get_requires_for_build_wheel() == ["wheel"]  # setuptools' own


def test_the_environments_torch_is_put_on_the_build_path(backend, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "path", list(sys.path))
    # torch importable once the environment's site-packages is on the path
    monkeypatch.setattr(backend, "_torch_importable", lambda: str(tmp_path) in sys.path)
    monkeypatch.setattr(backend, "_target_torch", lambda: str(tmp_path))
    assert backend.get_requires_for_build_wheel() == ["wheel"]  # setuptools' own, no torch
    assert sys.path[-1] == str(tmp_path)  # last: the isolated build's own tools come first


@pytest.fixture
def build():
    """srcext/_build.py, read by path as setup.py reads it."""
    spec = importlib.util.spec_from_file_location("srcext_build", ROOT / "srcpkg" / "srcext" / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_packaged_sources_are_the_build_sources(build):
    """What setup.py copies into the package (srcext/_csrc) holds every translation unit the
    first-use compile needs, the file it recognises a source tree by, and no test-only
    emulation."""
    csrc = str(ROOT / "csrc")
    packaged = set(build.source_files(csrc))
    for unit in build.sources(csrc, cuda=True):
        assert str(pathlib.Path(unit).relative_to(csrc)) in packaged
    assert "common/src_cell.h" in packaged and not any("emulation" in p for p in packaged)
    assert build.SOURCES_MARKER in packaged


def test_translation_units_have_distinct_object_names(build):
    """Two sources of one folder with the same stem (x.cpp and x.cu) compile to the same object
    file under setup.py, which ninja refuses ("multiple rules generate"); the first-use compile
    (torch's cpp_extension.load) names objects by file name alone, so there two units of the same
    name in different folders would clash too: every unit's stem is its own, tree-wide."""
    units = [pathlib.Path(p).relative_to(ROOT) for p in build.sources(str(ROOT / "csrc"), cuda=True)]
    objects = [unit.with_suffix("") for unit in units]
    assert len(set(objects)) == len(objects), sorted(map(str, objects))
    stems = [unit.stem for unit in units]
    assert len(set(stems)) == len(stems), sorted(stems)


def test_first_use_compile_finds_the_sources():
    """srcext._extension finds the kernels' sources: those packaged with an install
    (srcext/_csrc, laid out as csrc/: test_the_packaged_sources_are_the_build_sources), or in an
    editable install the checkout's csrc/."""
    import srcext._extension as extension

    root = pathlib.Path(extension._source_root())
    package = pathlib.Path(extension.__file__).parent
    assert root in (package / "_csrc", ROOT / "csrc"), root
    assert (root / "common" / "src_cell.h").is_file()
