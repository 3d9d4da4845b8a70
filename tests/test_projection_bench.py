"""benchmarks/projection_bench.py (speed.py --projection): the crossover interpolation, and a
tiny run end to end (JSON and plot written, every contender timed)."""

import json
import os
import sys

import pytest

from helpers import requires_fused

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import projection_bench

pytestmark = requires_fused


def rows(ratios):
    return {
        str(d): {"dense": {"median_ms": 10.0}, "sparse": {"median_ms": 10.0 * r}, "events": {"median_ms": 5.0 * r}}
        for d, r in ratios
    }


def test_crossover_interpolates_on_log_density():
    r = rows([(0.01, 0.5), (0.1, 2.0)])
    c = projection_bench.crossover_density(r, (0.01, 0.1))
    # log-linear: ratio 0.5 -> 2.0 across a decade, 1.0 halfway (in logs): density 10^-1.5.
    assert c["sparse"] == pytest.approx(10**-1.5)
    assert c["events"] == "> 0.1"  # events still faster at the last density
    assert projection_bench.crossover_density(rows([(0.01, 2.0), (0.1, 3.0)]), (0.01, 0.1))["sparse"] is None


def test_tiny_run(tmp_path):
    out = tmp_path / "p.json"
    results = projection_bench.main(
        [
            "--T",
            "3",
            "--B",
            "2",
            "--F",
            "20",
            "--H",
            "8",
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--densities",
            "0.1",
            "0.5",
            "--skip-mnist",
            "--out",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved["R"] == 6 and set(saved["projection"]) == {"float32", "bfloat16"}
    for dtype in ("float32", "bfloat16"):
        row = saved["projection"][dtype]["0.1"]
        for name in ("dense", "auto", "sparse", "events"):
            assert row[name]["rounds"] == 1 and row[name]["min_ms"] > 0
    assert (tmp_path / "p.png").stat().st_size > 0
    assert results["projection"]["float32"]["0.5"]["measured_density"] > 0
