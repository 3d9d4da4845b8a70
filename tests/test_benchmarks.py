"""Tests of the benchmark scripts: the eager baseline of benchmarks/speed.py against the
reference, its statistics, and smoke runs at tiny sizes on the CPU (so that the GPU run of
benchmarks/gpu_check.sh does not fail on a script error)."""

import importlib.util
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from srcext.reference import SRCConstants, src_cell_step, src_recurrence_reference

from helpers import FLAG_IDS, FLAGS, random_constants, requires_fused

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The scripts import their sibling modules (machine.py), as they do when run from anywhere.
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
TINY = ["--T", "6", "--B", "2", "--H", "5", "--rounds", "2", "--warmup", "1", "--threads", "1"]


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def speed():
    return load("speed")


# ---------------------------------------------------------------------------------------------
# The eager baseline: the reference loop over u.unbind(0)


def run_and_grad(run, u, bias, state, k, detach, st, weights):
    spikes, final = run(u, bias, state, k, detach, st)
    loss = (spikes * weights[0]).sum() + sum((f * w).sum() for f, w in zip(final, weights[1:]))
    grads = torch.autograd.grad(loss, (u, bias) + tuple(state), allow_unused=True)
    return (spikes,) + tuple(final), grads


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("seed", [1, 2])
def test_unbind_loop_is_bitwise_the_reference(speed, dtype, detach, st, seed):
    g = torch.Generator().manual_seed(seed)
    T, B, H = 9, 3, 7
    k = random_constants(seed)

    def leaf(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g) * scale + shift).to(dtype).requires_grad_()

    u = leaf(T, B, H, scale=1.5)
    bias = leaf(H, scale=0.5, shift=-1.0)  # near threshold: spikes and silence both occur
    state = (leaf(B, H), leaf(B, H, scale=0.5), leaf(B, H, scale=0.5))
    weights = [torch.randn(T, B, H, generator=g).to(dtype)] + [
        torch.randn(B, H, generator=g).to(dtype) for _ in range(3)
    ]
    out_ref, grads_ref = run_and_grad(src_recurrence_reference, u, bias, state, k, detach, st, weights)
    out_unb, grads_unb = run_and_grad(speed.src_recurrence_unbind, u, bias, state, k, detach, st, weights)
    assert (out_ref[0] > 0).any() and (out_ref[0] == 0).any(), "the case must exercise the relu"
    for a, b in zip(out_ref, out_unb):
        assert a.dtype == b.dtype and torch.equal(a, b)
    for name, a, b in zip(("u", "bias", "i0", "h0", "hs0"), grads_ref, grads_unb):
        assert (a is None) == (b is None), name
        if a is not None:
            assert torch.equal(a, b), f"gradient of {name} differs"


def test_unbind_loop_empty_sequence(speed):
    u = torch.zeros(0, 2, 3)
    state = tuple(torch.zeros(2, 3) for _ in range(3))
    spikes, final = speed.src_recurrence_unbind(u, torch.zeros(3), state)
    ref, ref_final = src_recurrence_reference(u, torch.zeros(3), state)
    assert spikes.shape == ref.shape == (0, 2, 3)
    assert all(a is b for a, b in zip(final, ref_final))


# ---------------------------------------------------------------------------------------------
# The statistics


def test_rounds_rotate_and_time_each_call_alone(speed):
    session = speed.Session(torch.device("cpu"), rounds=3, warmup=1)
    calls = []
    samples = session.compare("g", {n: (lambda n=n: calls.append(n)) for n in "abc"})
    rounds = [calls[i : i + 3] for i in range(0, 12, 3)]
    assert rounds == [list("abc"), list("bca"), list("cab"), list("abc")]
    assert all(len(s) == 3 for s in samples.values())  # the warm-up round is not kept
    assert len(session.groups["g"]["foreign"]) == 3  # the contention of each timed round


def test_paired_ratios_and_contention_flag(speed):
    session = speed.Session(torch.device("cpu"), rounds=4, warmup=0)
    session.groups["g"] = {
        "samples": {
            "fused": [(1.0, 0, 0), (2.0, 0, 0), (1.0, 0, 0), (4.0, 0, 0)],
            "base": [(3.0, 5, 1), (6.0, 5, 1), (9.0, 7, 1), (8.0, 9, 1)],
        },
        "foreign": [0.01, 0.0, 0.04, None],
    }
    # Per round 3, 3, 9, 2: the median of the pairs, not the ratio of medians (6.5 / 1.5).
    r = session.paired("g", "base", "fused")
    assert r["median"] == 3.0 and r["min"] == 2.0 and r["max"] == 9.0 and r["n"] == 4
    assert r["q1"] <= r["median"] <= r["q3"]
    st = session.stats("g", "base")
    assert st["min_s"] == 3.0 and st["minor_faults_per_call"] == 6 and st["major_faults_per_call"] == 1
    c = session.contention()
    assert c["flagged"] is False and c["foreign_max"] == 0.04 and c["measure"] == "foreign_cpu"
    assert c["rounds"] == 4 and c["flagged_rounds"] == 0
    session.groups["g"]["foreign"][1] = 0.3
    c = session.contention()
    assert c["flagged"] is False and c["flagged_rounds"] == 1  # one round in four: a quarter
    session.groups["g"]["foreign"][0] = 0.2
    c = session.contention()
    assert c["flagged"] is True and c["flagged_rounds"] == 2 and c["flagged_rounds_per_group"] == {"g": 2}
    # Up to a quarter of the rounds flagged (a clock tick of a daemon in a short round) do not
    # flag the run; more do.
    session.groups["g"]["foreign"] = [0.3] * 5 + [0.0] * 15
    c = session.contention()
    assert c["flagged"] is False and c["flagged_rounds"] == 5
    session.groups["g"]["foreign"][5] = 0.06
    assert session.contention()["flagged"] is True


def test_foreign_load_arithmetic(speed, monkeypatch):
    """Busy ticks of the machine less this process's own CPU time, over wall time x cores."""
    load = speed.ForeignLoad()
    load.tick, load.cores = 100, 2
    busy = iter([1000, 1000 + 150])  # 1.5 s of busy CPU in the window
    own = iter([(10.0, 2.0), (10.6, 2.4)])  # of which 1.0 s was this process
    wall = iter([50.0, 51.0])  # a 1 s window on 2 cores
    monkeypatch.setattr(load, "_busy", lambda: next(busy))
    monkeypatch.setattr(speed.os, "times", lambda: type("T", (), dict(zip(("user", "system"), next(own))))())
    monkeypatch.setattr(speed.time, "perf_counter", lambda: next(wall))
    started = load.start()
    assert abs(load.fraction(started) - 0.25) < 1e-12  # 0.5 s foreign / (1 s x 2 cores)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat (Linux)")
def test_foreign_load_sees_another_process(speed):
    load = speed.ForeignLoad()
    assert load.available
    started = load.start()
    subprocess.run(
        [sys.executable, "-c", "import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < 0.5: pass"],
        check=True,
    )
    # The child kept a core busy for most of the window (its interpreter start-up included).
    assert load.fraction(started) > 0.3 / load.cores


def test_clock_counts_page_faults(speed):
    clock = speed.Clock(torch.device("cpu"))
    # 64 MiB written for the first time: well above glibc's mmap threshold, faulted in.
    seconds, minor, major = clock(lambda: torch.ones(16 * 2**20))
    assert seconds > 0 and minor >= 1000 and major >= 0


# ---------------------------------------------------------------------------------------------
# Smoke runs at tiny sizes


@requires_fused
def test_speed_script_runs_and_writes_json(speed, tmp_path):
    out = tmp_path / "speed_cuda.json"  # named as gpu_check.sh names it, for gpu_summary below
    results = speed.main(TINY + ["--compile-backend", "eager", "--copy-mib", "8", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["T"] == 6 and data["rounds"] == 2
    for tag in ("detached", "bptt"):
        for what in ("forward", "fwd_bwd"):
            for base in ("reference", "compiled"):
                key = f"{what}_{tag}_vs_{base}"
                assert data["ratios"][key] == data["ratio_spread"][key]["median"] > 0
                assert data["ratio_spread"][key]["n"] == 2
    assert data["ratios"]["inference_vs_reference"] > 0 and "layer_step_vs_gru" in data["ratios"]
    st = data["stats"]["recurrence_fwd_bwd_detached_fused"]
    assert 0 < st["min_s"] <= st["median_s"] and st["minor_faults_per_call"] >= 0
    assert set(data["layers"]) == {"srcext SRC", "nn.GRU"}
    # Each timed round of each group read: 4 recurrence, inference, kernels, 2 layer groups.
    assert data["contention"]["rounds"] == 2 * 8
    assert {"flagged", "foreign_median", "flagged_rounds"} <= set(data["contention"])
    roof = data["roofline"]
    for name in ("forward_train", "forward_inference", "backward_detached"):
        assert roof["kernels"][name]["fraction_of_copy"]["median"] > 0
    # the kernels timed back to back too (and, on a GPU only, as a CUDA-graph replay)
    ways = data["kernel_timing"]["ways"]
    for name in ("forward_train", "backward_detached"):
        assert ways[name]["back_to_back"]["seconds"] > 0 and ways[name]["back_to_back"]["fraction_of_copy"] > 0
        assert "graph_replay" not in ways[name]
    assert results["timings_s"]["recurrence_inference_fused"] > 0
    table = speed.markdown(data)
    assert "| forward + backward, exact BPTT |" in table and "| backward detached |" in table
    assert "| nn.GRU |" in table
    # benchmarks/gpu_summary.py finds every figure it reports but bf16 (a CUDA-only group).
    load("gpu_summary").main(str(tmp_path))
    summary = json.loads((tmp_path / "gpu_summary.json").read_text())
    for key in (
        "recurrence_speedup_vs_reference",
        "recurrence_speedup_vs_compiled",
        "bandwidth_fraction_forward",
        "bandwidth_fraction_backward",
        "layer_speedup_vs_gru",
    ):
        assert summary[key] is not None and summary[key] > 0, key


@requires_fused
@pytest.mark.parametrize("stop", ["error", "sigterm"])
def test_speed_script_stopped_early_writes_what_it_measured(speed, tmp_path, monkeypatch, stop):
    """A run cut short (a lent GPU's time limit sends SIGTERM; a later group fails) still
    writes the groups it finished, marked incomplete, and the SIGTERM handler is restored."""
    out = tmp_path / "speed.json"

    def stopped(*args, **kwargs):
        if stop == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        raise RuntimeError("a later group failed")

    monkeypatch.setattr(speed, "bench_recurrence", stopped)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit if stop == "sigterm" else RuntimeError):
        speed.main(TINY + ["--skip-compile", "--copy-mib", "8", "--out", str(out)])
    assert signal.getsignal(signal.SIGTERM) is handler
    data = json.loads(out.read_text())
    assert ("signal" if stop == "sigterm" else "a later group failed") in data["incomplete"]
    assert data["roofline"]["kernels"]["forward_train"]["time_s"] > 0  # the group before it
    assert "recurrence_fwd_bwd_detached_fused" not in data["stats"]


@requires_fused
def test_speed_compiled_baseline_and_kernel_roofline(speed):
    u, bias, state = speed.recurrence_inputs(5, 2, 3, torch.device("cpu"), torch.float32)
    k = SRCConstants()
    run = speed.compiled_reference(torch.compile(src_cell_step, backend="eager"))
    spikes, _ = run(u, bias, state, k, True, True)
    ref, _ = src_recurrence_reference(u, bias, state, k)
    assert torch.equal(spikes, ref)
    # The kernels' group and the bf16 group, as the CUDA run does them, on the CPU.
    session = speed.Session(torch.device("cpu"), rounds=2, warmup=0)
    results = {"timings_s": {}, "ratios": {}, "ratio_spread": {}, "stats": {}}
    speed.bench_kernels(session, results, u, bias, state, k, 1024)
    for key in ("forward_fraction_of_copy", "backward_fraction_of_copy", "copy_bytes_per_s"):
        assert results["bandwidth"][key] > 0
    speed.bench_bf16(session, results, u, bias, state, k)
    assert results["bf16_speedup_vs_fp32"] > 0


PEERS = {
    "snnTorch": ("snntorch", ["snnTorch Leaky", "snnTorch RLeaky"]),
    "SpikingJelly": ("spikingjelly", ["SpikingJelly LIFNode"]),
    "Norse": ("norse", ["Norse LIF", "Norse LIFRecurrent"]),
}


@pytest.fixture(scope="module")
def peers_run(speed, tmp_path_factory):
    out = tmp_path_factory.mktemp("peers") / "speed.json"
    speed.main(TINY + ["--skip-compile", "--skip-roofline", "--peers", "--density", "0.5", "--out", str(out)])
    return json.loads(out.read_text())


@requires_fused
def test_peers_torch_layers(peers_run):
    for name in ("srcext SRC", "nn.GRU", "nn.LSTM"):
        row = peers_run["layers"][name]
        assert row["train_s"] > 0 and row["inference_ns_per_neuron_step"] > 0
        assert row["train_vs_src"]["median"] > 0
    assert peers_run["layers"]["nn.GRU"]["firing_rate"] is None
    assert 0 <= peers_run["layers"]["srcext SRC"]["firing_rate"] <= 1


@requires_fused
@pytest.mark.parametrize("library", list(PEERS))
def test_peers_measured_where_installed(peers_run, library):
    module, layers = PEERS[library]
    if importlib.util.find_spec(module) is None:
        assert library in peers_run["peers_missing"]
        pytest.skip(f"{module} is not installed (docs/results.md, Speed on the CPU, says how)")
    for name in layers:
        row = peers_run["layers"][name]
        assert row["train_s"] > 0 and row["inference_s"] > 0 and row["train_vs_src"]["median"] > 0
        assert 0 <= row["firing_rate"] <= 1 and row["how"]


def test_gpu_summary_reads_a_run(tmp_path):
    summary = load("gpu_summary")
    (tmp_path / "stages.txt").write_text("build=0\ncuda_tests=0\nbenchmark=0\n")
    (tmp_path / "pytest_cuda.log").write_text("....\n== 120 passed, 1 skipped in 30.0s ==\n")
    speed = {
        "device": "NVIDIA H200",
        "torch": "2.11",
        "cuda": "13.0",
        "commit": "abc",
        "T": 500,
        "B": 256,
        "H": 1024,
        "ratios": {
            "fwd_bwd_detached_vs_reference": 80.0,
            "fwd_bwd_detached_vs_compiled": 4.0,
            "layer_step_vs_gru": 3.5,
        },
        "bandwidth": {"forward_fraction_of_copy": 0.7, "backward_fraction_of_copy": 0.65},
        "bf16_speedup_vs_fp32": 1.4,
        "kernel_timing": {
            "ways": {  # the forward's A/B (two lanes a thread, or one), as speed.py writes it
                "forward_train": {"graph_replay": {"seconds": 4e-4, "fraction_of_copy": 0.9}},
                "forward_train_1lane": {"graph_replay": {"seconds": 5e-4, "fraction_of_copy": 0.72}},
                "forward_inference": {"back_to_back": {"seconds": 2e-4}},
                "forward_inference_1lane": {"back_to_back": {"seconds": 3e-4}},
            }
        },
    }
    (tmp_path / "speed_cuda.json").write_text(json.dumps(speed))
    summary.main(str(tmp_path))
    data = json.loads((tmp_path / "gpu_summary.json").read_text())
    assert data["forward_train_fraction_of_copy_kernel_level"] == 0.9
    assert data["forward_train_1lane_fraction_of_copy_kernel_level"] == 0.72
    assert data["forward_train_one_lane_over_two"] == pytest.approx(1.25)
    assert data["forward_inference_one_lane_over_two"] == pytest.approx(1.5)
    assert data["cuda_tests_passed"] is True
    assert data["recurrence_speedup_vs_reference"] == 80.0
    for key in (
        "recurrence_speedup_vs_compiled",
        "bandwidth_fraction_forward",
        "bandwidth_fraction_backward",
        "layer_speedup_vs_gru",
        "bf16_speedup_vs_fp32",
    ):
        assert data[key] is not None, key
    assert "| yes |" in (tmp_path / "gpu_summary.md").read_text()


def test_machine_is_named_not_just_the_architecture():
    import machine

    cpu = machine.describe("cpu")
    assert cpu["device"] and cpu["cpu_cores"] == os.cpu_count()
    assert cpu["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine.label(cpu).startswith(cpu["device"]) and cpu["cpu_capability"] in machine.label(cpu)
    assert machine.label({"device": "x86_64"}) == "x86_64"  # results written before it


def test_host_overhead_smoke_run(tmp_path):
    """benchmarks/host_overhead.py at a handful of calls: every case runs and is written."""
    out = tmp_path / "host.json"
    results = load("host_overhead").main(
        ["--rounds", "2", "--calls", "2", "--backend", "auto", "--out", str(out), "--input-size", "5", "--hidden", "7"]
    )
    written = json.loads(out.read_text())
    assert set(written["cases"]) == {"layer_fwd_bwd", "layer_inference", "cell_step", "cell_step_fwd_bwd"}
    for case in results["cases"].values():
        assert case["src_us_median"] > 0 and case["torch_us_median"] > 0
        assert case["ratio_min"] <= case["ratio_median"] <= case["ratio_max"]


def test_layer_precision_smoke_run(tmp_path):
    """benchmarks/layer_precision.py on the CPU at tiny sizes: every mode runs both contenders,
    records their ops, and restores torch's TF32 flags."""
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    out = tmp_path / "lp.json"
    results = load("layer_precision").main(
        ["--T", "6", "--B", "3", "--H", "8", "--rounds", "2", "--warmup", "1", "--out", str(out)]
    )
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags
    assert set(json.loads(out.read_text())["modes"]) == {"strict_fp32", "tf32", "bf16_autocast"}
    for mode in results["modes"].values():
        assert set(mode["kernels"]) == {"srcext SRC", "nn.GRU"} and all(mode["kernels"].values())
        assert mode["gru_over_src"]["min"] <= mode["gru_over_src"]["median"] <= mode["gru_over_src"]["max"]
