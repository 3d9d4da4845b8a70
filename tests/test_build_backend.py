"""tools/build_backend.py, pip's build backend for srcext: it asks for torch only where the
target environment has none, and otherwise lets the isolated build import the target's torch
(the build itself is exercised by CI's `pip install .` and wheel install)."""

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


def test_torch_is_a_build_requirement_only_without_one_in_the_environment(backend, monkeypatch):
    monkeypatch.setattr(backend, "_torch_importable", lambda: False)
    monkeypatch.setattr(backend, "_target_torch", lambda: None)
    assert backend.get_requires_for_build_wheel() == ["wheel", backend.TORCH_REQUIREMENT]


def test_the_environments_torch_is_put_on_the_build_path(backend, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "path", list(sys.path))
    # torch importable once the environment's site-packages is on the path
    monkeypatch.setattr(backend, "_torch_importable", lambda: str(tmp_path) in sys.path)
    monkeypatch.setattr(backend, "_target_torch", lambda: str(tmp_path))
    assert backend.get_requires_for_build_wheel() == ["wheel"]  # setuptools' own, no torch
    assert sys.path[-1] == str(tmp_path)  # last: the isolated build's own tools come first


def test_the_torch_requirement_is_the_projects():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    spec = importlib.util.spec_from_file_location("srcext_build_backend", ROOT / "tools" / "build_backend.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert module.TORCH_REQUIREMENT in project["dependencies"]
