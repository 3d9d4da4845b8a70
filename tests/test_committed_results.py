"""The committed results (examples/results, benchmarks/results) carry no path of the machine
that produced them: they are read on other machines, and a path there is either wrong or a
leak. Paths are stored relative to the repository (examples/common.py: portable_path)."""

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = sorted(p for folder in ("examples/results", "benchmarks/results") for p in (ROOT / folder).rglob("*.json"))
# An absolute path into a user's or a scratch folder, alone or inside a command line.
MACHINE_PATH = re.compile(r"(^|[\s=:'\"])/(work|tmp|home|root|Users|scratch)/")


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def test_there_are_results_to_check():
    assert len(RESULTS) >= 10


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_machine_paths(path):
    found = [s for s in strings(json.loads(path.read_text())) if MACHINE_PATH.search(s)]
    assert not found, f"{path.relative_to(ROOT)} holds machine paths: {found[:3]}"


def test_the_check_finds_a_machine_path():
    assert MACHINE_PATH.search("python train.py --out /tmp/run")
    assert MACHINE_PATH.search("/work/shared/datasets")
    assert not MACHINE_PATH.search("../shared/datasets")
    assert not MACHINE_PATH.search("examples/results/mnist_1x512")
