"""Smoke tests of the benchmark scripts (tiny sizes on the CPU), so that the GPU run of
benchmarks/gpu_check.sh does not fail on a script error."""
import importlib.util
import json
import os

import torch

from srcext.reference import SRCConstants, src_cell_step, src_recurrence_reference

from conftest import requires_fused

pytestmark = requires_fused
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speed_script_runs_and_writes_json(tmp_path):
    speed = load("speed")
    out = tmp_path / "speed.json"
    results = speed.main(["--T", "6", "--B", "2", "--H", "5", "--repeats", "1", "--threads", "1",
                          "--skip-compile", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["T"] == 6 and data["ratios"]["fwd_bwd_detached_vs_reference"] > 0
    assert "layer_step_vs_gru" in data["ratios"]
    assert results["timings_s"]["recurrence_inference_fused"] > 0


def test_speed_compiled_baseline_and_cuda_extras_on_cpu(tmp_path):
    speed = load("speed")
    u, bias, state = speed.recurrence_inputs(5, 2, 3, torch.device("cpu"), torch.float32)
    k = SRCConstants()
    run = speed.compiled_reference(torch.compile(src_cell_step, backend="eager"))
    spikes, _ = run(u, bias, state, k, True, True)
    ref, _ = src_recurrence_reference(u, bias, state, k)
    assert torch.equal(spikes, ref)
    results = {"timings_s": {}}
    timer = speed.Timer(torch.device("cpu"))
    fwd_bwd = speed.make_step_runner(speed.src_recurrence_fused, u, bias, state, k, True)[1]
    results["timings_s"]["recurrence_fwd_bwd_detached_fused"] = timer(fwd_bwd, 1)
    speed.cuda_extras(results, timer, u, bias, state, k, 1)
    assert results["bandwidth"]["forward_fraction_of_copy"] > 0
    assert results["bf16_speedup_vs_fp32"] > 0


def test_gpu_summary_reads_a_run(tmp_path):
    summary = load("gpu_summary")
    (tmp_path / "stages.txt").write_text("build=0\ncuda_tests=0\nbenchmark=0\n")
    (tmp_path / "pytest_cuda.log").write_text("....\n== 120 passed, 1 skipped in 30.0s ==\n")
    speed = {"device": "NVIDIA H200", "torch": "2.11", "cuda": "13.0", "commit": "abc", "T": 500,
             "B": 256, "H": 1024, "ratios": {"fwd_bwd_detached_vs_reference": 80.0,
                                             "fwd_bwd_detached_vs_compiled": 4.0,
                                             "layer_step_vs_gru": 3.5},
             "bandwidth": {"forward_fraction_of_copy": 0.7, "backward_fraction_of_copy": 0.65},
             "bf16_speedup_vs_fp32": 1.4}
    (tmp_path / "speed_cuda.json").write_text(json.dumps(speed))
    summary.main(str(tmp_path))
    data = json.loads((tmp_path / "gpu_summary.json").read_text())
    assert data["cuda_tests_passed"] is True
    assert data["recurrence_speedup_vs_reference"] == 80.0
    for key in ("recurrence_speedup_vs_compiled", "bandwidth_fraction_forward",
                "bandwidth_fraction_backward", "layer_speedup_vs_gru", "bf16_speedup_vs_fp32"):
        assert data[key] is not None, key
    assert "| yes |" in (tmp_path / "gpu_summary.md").read_text()
