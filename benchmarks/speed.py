"""Speed of the fused SRC kernels against the best plain-PyTorch loop, its torch.compile, the
cell math alone, a memory copy, and (with --peers) other spiking and recurrent layers.

    python benchmarks/speed.py                   # CPU: T=220, B=128, H=256, float32, 2 threads
    python benchmarks/speed.py --peers           # + snnTorch, SpikingJelly, Norse, GRU, LSTM
    python benchmarks/speed.py --device cuda     # GPU: T=500, B=256, H=1024 (CUDA events)

How it measures (so that a shared, noisy machine cannot fake a ratio):
  * the contenders of one comparison run interleaved, round-robin, in a rotating order, for
    --warmup rounds and then --rounds timed rounds; each call is timed alone (CUDA: events
    around it, synchronised);
  * per contender: median, minimum and interquartile range of its calls, and the page faults
    per call (minor/major, getrusage around the call);
  * ratios are paired: per round, baseline time / fused time; reported as the median of the
    rounds with their interquartile range and extremes;
  * contention is measured, not guessed: around every round the CPU time the rest of the
    machine used (other processes, and the hypervisor's steal time, from /proc/stat, less this
    process's own CPU time) is taken as a fraction of the machine's capacity. A round where it
    exceeds --foreign (5 %) is flagged, and so is the run when more than a quarter of its
    rounds are: its figures were taken while something else ran.

What is compared:
  * recurrence, the time loop alone on a drive u (T, B, H): the fused op against the
    reference cell step looped in Python over ``u.unbind(0)`` (the best eager loop; indexing
    ``u[t]`` makes every step's backward zero-fill a whole (T, B, H) gradient) and against
    that step under torch.compile; forward (training mode), forward+backward, inference;
  * roofline: each fused kernel (the op alone, no autograd) against a large tensor copy, and
    (CUDA) timed back to back and as a CUDA-graph replay, with two neurons a thread or one;
  * layer: a training step (forward + backward of the sum of the outputs) and inference of
    SRC(H, H) against nn.GRU(H, H), and with --peers the other libraries' layers.
Prints tables and writes JSON to benchmarks/results/speed_<device>.json (or --out).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import resource
import signal
import statistics
import sys
import time
from typing import Callable, Dict, List

import torch

import srcext
from srcext.ops import CHECKPOINT_INTERVAL, constant_args, num_checkpoints, src_recurrence_fused
from srcext.ops.recurrence import LANES_ENV
from srcext.reference import DEFAULTS, SRCConstants, src_cell_step, src_recurrence_reference

from machine import call_timer, command_line, describe, git_commit, wall_time, write_json
from machine import label as machine_label

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# --------------------------------------------------------------------------------------------
# The eager baseline


def src_recurrence_unbind(
    u,
    bias,
    state,
    k: SRCConstants = DEFAULTS,
    detach_recurrent=True,
    straight_through=True,
    step=src_cell_step,
):
    """The loop of src_recurrence_reference (over ``u.unbind(0)``) with a pluggable cell step,
    for the compiled baseline; with the eager step it is bitwise the reference
    (tests/test_benchmarks.py)."""
    outputs = []
    for u_t in u.unbind(0):
        s_t, state = step(u_t, state, bias, k, detach_recurrent, straight_through)
        outputs.append(s_t)
    if outputs:
        return torch.stack(outputs), state
    return u.new_empty((0,) + tuple(state[0].shape)), state


def compiled_reference(step):
    """The eager loop around a compiled cell step (compiling the unrolled 220-step loop takes
    minutes; one compiled step is what a user gets)."""

    def run(u, bias, state, k=DEFAULTS, detach_recurrent=True, straight_through=True):
        return src_recurrence_unbind(u, bias, state, k, detach_recurrent, straight_through, step)

    return run


# --------------------------------------------------------------------------------------------
# Measurement


def page_faults():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_minflt, ru.ru_majflt


class Clock:
    """Times one call alone: wall clock on the CPU, CUDA events (synchronised) on the GPU; and
    the page faults the process took during it."""

    def __init__(self, device: torch.device):
        self.time = call_timer(device)

    def __call__(self, fn):
        f0 = page_faults()
        seconds = self.time(fn)
        f1 = page_faults()
        return seconds, f1[0] - f0[0], f1[1] - f0[1]


# Share of a run's rounds that may be flagged before the run is (ForeignLoad's resolution).
# A quarter: a quiet machine's daemons and the clock-tick resolution put some rounds above
# the 5 % limit (a run with 1.2 % median contention was flagged at a tenth); a machine that is
# really shared (a build beside the run: 54 of 88 rounds) still is.
FLAGGED_ROUNDS_ALLOWED = 0.25


class ForeignLoad:
    """The CPU time the rest of the machine took while a round ran, as a fraction of all its
    cores: busy time from /proc/stat (user, nice, system, irq, softirq, steal) less this
    process's own (all its threads). Linux only; elsewhere it reads None (and flags nothing).
    Resolution: one clock tick (10 ms) per core, so rounds shorter than about a second read
    a few percent of noise; --foreign sits above it."""

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.cores = os.cpu_count() or 1
        self.available = self._busy() is not None

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu":
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
        return user + nice + system + irq + softirq + steal

    def start(self):
        t = os.times()
        return self._busy(), t.user + t.system, time.perf_counter()

    def fraction(self, started) -> float | None:
        busy0, own0, wall0 = started
        busy1 = self._busy()
        if busy0 is None or busy1 is None:
            return None
        t = os.times()
        own = t.user + t.system - own0
        wall = time.perf_counter() - wall0
        foreign = (busy1 - busy0) / self.tick - own
        return max(0.0, foreign) / (wall * self.cores) if wall > 0 else 0.0


def quartiles(xs: List[float]):
    """(q1, median, q3); a single value is its own quartiles."""
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q1, med, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, med, q3


def spread(xs: List[float]) -> dict:
    q1, med, q3 = quartiles(xs)
    return {"median": med, "q1": q1, "q3": q3, "min": min(xs), "max": max(xs), "n": len(xs)}


class Session:
    """All the comparisons of one run, and the contention probe of every round."""

    def __init__(self, device: torch.device, rounds: int, warmup: int, foreign: float = 0.05):
        if rounds < 1 or warmup < 0:
            raise ValueError("speed.py: --rounds must be >= 1 and --warmup >= 0")
        self.clock = Clock(device)
        self.rounds, self.warmup, self.foreign_limit = rounds, warmup, foreign
        self.foreign = ForeignLoad()
        self.groups: Dict[str, dict] = {}

    def compare(self, group: str, contenders: Dict[str, Callable[[], object]]) -> dict:
        """Run the contenders round-robin; returns {name: [(seconds, minflt, majflt), ...]}."""
        names = list(contenders)
        samples = {name: [] for name in names}
        foreign = []
        began = time.perf_counter()
        for r in range(self.warmup + self.rounds):
            shift = r % len(names)
            load = self.foreign.start()
            for name in names[shift:] + names[:shift]:
                sample = self.clock(contenders[name])
                if r >= self.warmup:
                    samples[name].append(sample)
            if r >= self.warmup:
                foreign.append(self.foreign.fraction(load))
        self.groups[group] = {"samples": samples, "foreign": foreign}
        print(
            f"[speed] {group}: {len(names)} contenders x {self.warmup + self.rounds} rounds, "
            f"{time.perf_counter() - began:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        return samples

    def seconds(self, group: str, name: str) -> List[float]:
        return [s[0] for s in self.groups[group]["samples"][name]]

    def stats(self, group: str, name: str) -> dict:
        samples = self.groups[group]["samples"][name]
        secs = [s[0] for s in samples]
        q1, med, q3 = quartiles(secs)
        return {
            "median_s": med,
            "min_s": min(secs),
            "q1_s": q1,
            "q3_s": q3,
            "minor_faults_per_call": statistics.median(s[1] for s in samples),
            "major_faults_per_call": statistics.median(s[2] for s in samples),
        }

    def paired(self, group: str, num: str, den: str, scale: float = 1.0) -> dict:
        """Per round scale * time(num) / time(den), summarised."""
        a, b = self.seconds(group, num), self.seconds(group, den)
        return spread([scale * x / y for x, y in zip(a, b)])

    def record(self, results: dict, group: str, name: str, key: str = "") -> dict:
        """name's statistics in group, kept in results["stats"] and its median in "timings_s"."""
        key = key or f"{group}_{name}"
        st = results["stats"][key] = self.stats(group, name)
        results["timings_s"][key] = st["median_s"]
        return st

    def record_ratio(self, results: dict, key: str, group: str, num: str, den: str) -> dict:
        """The paired ratio num / den of group, kept in results["ratio_spread"] and "ratios"."""
        s = results["ratio_spread"][key] = self.paired(group, num, den)
        results["ratios"][key] = s["median"]
        return s

    def contention(self) -> dict:
        loads = {name: g["foreign"] for name, g in self.groups.items()}
        rounds = sum(len(xs) for xs in loads.values())
        if not rounds:
            return {"flagged": False, "rounds": 0}
        measured = [x for xs in loads.values() for x in xs if x is not None]
        per_group = {name: sum(x is not None and x > self.foreign_limit for x in xs) for name, xs in loads.items()}
        flagged = sum(per_group.values())
        return {
            "flagged": flagged > FLAGGED_ROUNDS_ALLOWED * rounds,
            "flagged_rounds_allowed": FLAGGED_ROUNDS_ALLOWED,
            "measure": "foreign_cpu" if measured else "none",
            "foreign_limit": self.foreign_limit,
            "rounds": rounds,
            "flagged_rounds": flagged,
            "flagged_fraction": flagged / rounds,
            "flagged_rounds_per_group": {k: v for k, v in per_group.items() if v},
            "foreign_median": statistics.median(measured) if measured else None,
            "foreign_max": max(measured) if measured else None,
            "foreign_per_round": loads,
        }


# --------------------------------------------------------------------------------------------
# The recurrence


def recurrence_inputs(T, B, H, device, dtype, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    # A drive like the paper's first layer: neurons fire at a few percent of steps.
    u = (torch.randn(T, B, H, generator=g) * 0.4).to(device=device, dtype=dtype)
    bias = torch.full((H,), -6.0, device=device, dtype=dtype)
    state = tuple(torch.zeros(B, H, device=device, dtype=dtype) for _ in range(3))
    return u.requires_grad_(), bias.requires_grad_(), state


def make_step_runner(run, u, bias, state, k, detach):
    """(forward, forward+backward) closures for one recurrence implementation."""
    grad = torch.ones_like(u)

    def forward():
        return run(u, bias, state, k, detach, True)[0]

    def forward_backward():
        spikes = forward()
        torch.autograd.grad(spikes, (u, bias), grad)

    return forward, forward_backward


def bench_recurrence(session, results, u, bias, state, k, impls):
    """Every (forward | forward+backward) x (detached | bptt) comparison, and inference."""
    for detach in (True, False):
        tag = "detached" if detach else "bptt"
        runners = {name: make_step_runner(run, u, bias, state, k, detach) for name, run in impls.items()}
        for what, idx in (("forward", 0), ("fwd_bwd", 1)):
            group = f"recurrence_{what}_{tag}"
            session.compare(group, {name: r[idx] for name, r in runners.items()})
            for name in impls:
                session.record(results, group, name)
                if name != "fused":
                    session.record_ratio(results, f"{what}_{tag}_vs_{name}", group, name, "fused")
    ud, bd = u.detach(), bias.detach()

    def inference(run):
        def go():
            with torch.no_grad():
                run(ud, bd, state, k)

        return go

    group = "recurrence_inference"
    session.compare(group, {name: inference(run) for name, run in impls.items() if name in ("fused", "reference")})
    for name in ("fused", "reference"):
        session.record(results, group, name)
    session.record_ratio(results, "inference_vs_reference", group, "reference", "fused")


# --------------------------------------------------------------------------------------------
# The roofline: each kernel against a copy


def kernel_bytes(T, B, H, itemsize=4):
    """Bytes each kernel must move at least (float32 math and checkpoints)."""
    N = T * B * H
    ckpt = 3 * 4 * B * H * num_checkpoints(T)
    return {
        "forward_train": 2 * itemsize * N + ckpt,  # read u, write spikes, checkpoints
        "forward_inference": 2 * itemsize * N,  # read u, write spikes
        "backward_detached": 3 * itemsize * N + ckpt,
    }  # read grad and u, checkpoints; write grad_u


def kernel_calls(u, bias, state, k, grad):
    """The ops alone (no autograd) on the drive u, by name: the training and inference forward,
    the backward with detached states + straight-through (the layer's default) and exact BPTT,
    from the upstream gradient grad (benchmarks/gpu_profile.py profiles the same calls)."""
    c = constant_args(k, u.dtype)
    ud, bd = u.detach(), bias.detach()
    i0, h0, hs0 = (s.detach() for s in state)
    zeros = [torch.zeros_like(i0) for _ in range(3)]  # dL/d(final state): none
    ops = torch.ops.srcext
    ckpt = ops.src_forward(ud, bd, i0, h0, hs0, *c, True, True, True)[4]
    return {
        "forward_train": lambda: ops.src_forward(ud, bd, i0, h0, hs0, *c, True, True, True),
        "forward_inference": lambda: ops.src_forward(ud, bd, i0, h0, hs0, *c, True, True, False),
        "backward_detached": lambda: ops.src_backward(grad, *zeros, ud, bd, ckpt, *c, True, True, False),
        "backward_exact": lambda: ops.src_backward(grad, *zeros, ud, bd, ckpt, *c, False, False, False),
    }


def bench_kernels(session, results, u, bias, state, k, copy_elements):
    """The ops themselves (no autograd) and a large copy, interleaved."""
    T, B, H = u.shape
    calls = kernel_calls(u, bias, state, k, torch.ones_like(u))
    src = torch.empty(copy_elements, device=u.device, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src).fill_(0.0)
    contenders = {name: calls[name] for name in ("forward_train", "forward_inference", "backward_detached")}
    contenders["copy"] = lambda: dst.copy_(src)
    group = "kernels"
    session.compare(group, contenders)
    stats = results["stats"]
    for name in contenders:
        session.record(results, group, name, f"kernel_{name}")
    copy_bytes = 2 * 4 * copy_elements
    copy_bw = copy_bytes / stats["kernel_copy"]["median_s"]
    need = kernel_bytes(T, B, H, u.element_size())
    roof = {"copy_bytes": copy_bytes, "copy_bytes_per_s": copy_bw, "kernels": {}}
    for name, nbytes in need.items():
        roof["kernels"][name] = {
            "time_s": stats[f"kernel_{name}"]["median_s"],
            "bytes": nbytes,
            "bytes_per_s": nbytes / stats[f"kernel_{name}"]["median_s"],
            # per round: (bytes / kernel time) / (copy bytes / copy time)
            "fraction_of_copy": session.paired(group, "copy", name, nbytes / copy_bytes),
        }
    results["roofline"] = roof
    # The keys benchmarks/gpu_summary.py reads.
    results["bandwidth"] = {
        "copy_bytes_per_s": copy_bw,
        "forward_bytes_per_s": roof["kernels"]["forward_train"]["bytes_per_s"],
        "backward_bytes_per_s": roof["kernels"]["backward_detached"]["bytes_per_s"],
        "forward_fraction_of_copy": roof["kernels"]["forward_train"]["fraction_of_copy"]["median"],
        "backward_fraction_of_copy": roof["kernels"]["backward_detached"]["fraction_of_copy"]["median"],
    }


def per_call_seconds(call, device: torch.device, calls: int, graph: bool = False) -> float:
    """Seconds per call of ``calls`` calls back to back (one synchronisation at the end, so the
    host's work overlaps the device's), or, with ``graph`` (CUDA), of one CUDA-graph replay of
    them (no host work at all): together with a single call's time, these separate the kernel
    from the host."""
    if device.type != "cuda":
        return wall_time(call, calls)
    if graph:
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            call()  # warm the allocator on the side stream, as graph capture needs
        torch.cuda.current_stream(device).wait_stream(stream)
        captured = torch.cuda.CUDAGraph()
        with torch.cuda.graph(captured):
            for _ in range(calls):
                call()
        run = captured.replay
    else:

        def run():
            for _ in range(calls):
                call()

    run()  # warm
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(device)
    start.record()
    run()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / calls


def one_lane(call):
    """call with the CUDA kernels held to one neuron a thread (LANES_ENV), captured so too by a
    CUDA graph."""

    def run():
        os.environ[LANES_ENV] = "1"
        try:
            return call()
        finally:
            del os.environ[LANES_ENV]

    return run


def bench_kernel_timing(results, u, bias, state, k, copy_elements, calls: int = 20, repeats: int = 5):
    """The kernels timed three ways (one call: speed.py's kernel group; N back to back; CUDA-graph
    replay of N, CUDA only), the copy alike, and the kernel-level fraction of the copy's
    bandwidth from the fastest way. The minimum of ``repeats`` for each."""
    device = u.device
    T, B, H = u.shape
    ops = kernel_calls(u, bias, state, k, torch.randn_like(u))
    src = torch.ones(copy_elements, device=device)
    dst = torch.empty_like(src)
    # The copy first: the others' fraction of its bandwidth is taken as they are timed.
    contenders = {"copy": lambda: dst.copy_(src)}
    contenders.update((name, ops[name]) for name in ("forward_train", "forward_inference", "backward_detached"))
    need = kernel_bytes(T, B, H, u.element_size())
    if device.type == "cuda":  # the A/B of the instances: two lanes a thread or one
        # (the detached backward runs two lanes with 16-bit storage only: its bfloat16 call)
        ub, bb, *sb = (t.detach().to(torch.bfloat16) for t in (u, bias, *state))
        ops["backward_detached_bf16"] = kernel_calls(ub, bb, sb, k, torch.randn_like(ub))["backward_detached"]
        need["backward_detached_bf16"] = kernel_bytes(T, B, H, 2)["backward_detached"]
        for name in ("forward_train", "forward_inference", "backward_detached_bf16"):
            contenders[name] = ops[name]
            contenders[name + "_1lane"] = one_lane(ops[name])
            need[name + "_1lane"] = need[name]
    copy_bytes = 2 * 4 * copy_elements
    ways = ["back_to_back"] + (["graph_replay"] if device.type == "cuda" else [])
    timing = {}
    for name, call in contenders.items():
        timing[name] = {}
        for way in ways:
            try:
                seconds = min(
                    per_call_seconds(call, device, calls, graph=way == "graph_replay") for _ in range(repeats)
                )
            except RuntimeError as e:  # a capture that fails is reported, not fatal
                timing[name][way] = {"error": str(e)[:200]}
                continue
            timing[name][way] = entry = {"seconds": seconds}
            copy = timing["copy"].get(way, {})
            if name in need and "seconds" in copy:
                entry["bytes_per_s"] = need[name] / seconds
                entry["fraction_of_copy"] = entry["bytes_per_s"] / (copy_bytes / copy["seconds"])
    results["kernel_timing"] = {"calls": calls, "repeats": repeats, "ways": timing}


def bench_bf16(session, results, u, bias, state, k):
    """bfloat16 against float32 storage, fused forward+backward (CUDA)."""
    ub = u.detach().to(torch.bfloat16).requires_grad_()
    bb = bias.detach().to(torch.bfloat16).requires_grad_()
    sb = tuple(s.to(torch.bfloat16) for s in state)
    group = "bf16"
    session.compare(
        group,
        {
            "float32": make_step_runner(src_recurrence_fused, u, bias, state, k, True)[1],
            "bfloat16": make_step_runner(src_recurrence_fused, ub, bb, sb, k, True)[1],
        },
    )
    session.record(results, group, "bfloat16", "recurrence_fwd_bwd_detached_fused_bf16")
    s = session.paired(group, "float32", "bfloat16")
    results["ratio_spread"]["bf16_vs_fp32"] = s
    results["bf16_speedup_vs_fp32"] = s["median"]


# --------------------------------------------------------------------------------------------
# Layers: SRC against GRU/LSTM and (with --peers) the spiking libraries


def peer_layers(F, H, device, dtype, with_peers: bool):
    """{name: (module, forward(x) -> outputs, description)} for every layer available.
    Each peer is used as its own documentation shows; missing libraries are listed apart."""
    layers, missing = {}, {}
    src = srcext.SRC(F, H, backend="fused", device=device, dtype=dtype)
    layers["srcext SRC"] = (src, lambda x: src(x)[0], "srcext.SRC(F, H), fused kernels")
    gru = torch.nn.GRU(F, H, device=device, dtype=dtype)
    layers["nn.GRU"] = (gru, lambda x: gru(x)[0], "torch.nn.GRU(F, H)")
    if not with_peers:
        return layers, missing
    lstm = torch.nn.LSTM(F, H, device=device, dtype=dtype)
    layers["nn.LSTM"] = (lstm, lambda x: lstm(x)[0], "torch.nn.LSTM(F, H)")

    try:
        import snntorch as snn  # the tutorials: a Linear then the neuron, looped over steps with mem

        fc1 = torch.nn.Linear(F, H, device=device, dtype=dtype)
        lif1 = snn.Leaky(beta=0.95).to(device=device, dtype=dtype)

        def leaky(x):
            mem = lif1.init_leaky()
            spikes = []
            for step in range(x.shape[0]):
                spk, mem = lif1(fc1(x[step]), mem)
                spikes.append(spk)
            return torch.stack(spikes)

        layers["snnTorch Leaky"] = (
            torch.nn.ModuleList([fc1, lif1]),
            leaky,
            f"snntorch {snn.__version__}: Linear + Leaky(beta=0.95), loop over steps",
        )
        fc2 = torch.nn.Linear(F, H, device=device, dtype=dtype)
        rlif = snn.RLeaky(beta=0.95, linear_features=H).to(device=device, dtype=dtype)

        def rleaky(x):
            spk, mem = rlif.init_rleaky()
            spikes = []
            for step in range(x.shape[0]):
                spk, mem = rlif(fc2(x[step]), spk, mem)
                spikes.append(spk)
            return torch.stack(spikes)

        layers["snnTorch RLeaky"] = (
            torch.nn.ModuleList([fc2, rlif]),
            rleaky,
            f"snntorch {snn.__version__}: Linear + RLeaky(beta=0.95, linear_features=H), loop over steps",
        )
    except ImportError as e:
        missing["snnTorch"] = str(e)

    try:
        import inspect

        import spikingjelly
        from spikingjelly.activation_based import functional, layer, neuron

        kwargs = {"step_mode": "m"}
        backend = "torch"
        if "backend" in inspect.signature(neuron.LIFNode.__init__).parameters:
            # Older SpikingJelly: cupy on CUDA when installed, else torch.
            backend = "cupy" if device.type == "cuda" and importlib.util.find_spec("cupy") else "torch"
            kwargs["backend"] = backend
        net = torch.nn.Sequential(layer.Linear(F, H), neuron.LIFNode(**kwargs)).to(device=device, dtype=dtype)
        functional.set_step_mode(net, "m")

        def sj(x):
            functional.reset_net(net)
            return net(x)

        version = getattr(spikingjelly, "__version__", "")
        layers["SpikingJelly LIFNode"] = (
            net,
            sj,
            f"spikingjelly {version}: Sequential(layer.Linear, "
            f"neuron.LIFNode(step_mode='m')), reset_net; {backend} backend",
        )
    except ImportError as e:
        missing["SpikingJelly"] = str(e)

    try:
        import norse
        import norse.torch as nt

        lif_net = nt.SequentialState(torch.nn.Linear(F, H), nt.LIF()).to(device=device, dtype=dtype)
        layers["Norse LIF"] = (
            lif_net,
            lambda x: lif_net(x)[0],
            f"norse {norse.__version__}: SequentialState(Linear, LIF()) on (T, B, F)",
        )
        lifr = nt.LIFRecurrent(F, H).to(device=device, dtype=dtype)
        layers["Norse LIFRecurrent"] = (
            lifr,
            lambda x: lifr(x)[0],
            f"norse {norse.__version__}: LIFRecurrent(F, H) on (T, B, F)",
        )
    except ImportError as e:
        missing["Norse"] = str(e)
    return layers, missing


def firing(name, out):
    """Spikes per neuron-step. SRC's spike is a pulse of several steps of relu(h) > 0: count
    its onsets. Binary neurons: the fraction of ones. Non-spiking layers: None."""
    if name.startswith("nn."):
        return None, None
    active = (out != 0).float().mean().item()
    if name == "srcext SRC":
        on = out > 0
        onsets = on[:1].sum() + (on[1:] & ~on[:-1]).sum()
        return onsets.item() / out.numel(), active
    return active, active


def bench_layers(session, results, T, B, H, device, dtype, with_peers, density):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(T, B, H, generator=g) < density).to(device=device, dtype=dtype)
    torch.manual_seed(0)  # the layers' initialisations, hence their firing rates
    layers, missing = peer_layers(H, H, device, dtype, with_peers)

    # A dense upstream gradient, as a loss gives: `.sum().backward()` would hand every layer a
    # stride-0 gradient, which some copy first (results committed before 2026-12-05 used it).
    grad = torch.randn(T, B, H, generator=g).to(device=device, dtype=dtype)

    def train(module, fwd):
        def go():
            module.zero_grad(set_to_none=True)
            out = fwd(x)
            out.backward(grad.to(out.dtype))

        return go

    def infer(fwd):
        def go():
            with torch.no_grad():
                fwd(x)

        return go

    session.compare("layer_train_step", {n: train(m, f) for n, (m, f, _) in layers.items()})
    session.compare("layer_inference", {n: infer(f) for n, (m, f, _) in layers.items()})
    stats, tm = results["stats"], results["timings_s"]
    neuron_steps = T * B * H
    table = {}
    for name, (_module, fwd, how) in layers.items():
        with torch.no_grad():
            rate, active = firing(name, fwd(x))
        row = {"how": how, "firing_rate": rate, "active_fraction": active}
        for group, what in (("layer_train_step", "train"), ("layer_inference", "inference")):
            st = session.stats(group, name)
            stats[f"{group}_{name}"] = st
            row[f"{what}_s"] = st["median_s"]
            row[f"{what}_min_s"] = st["min_s"]
            row[f"{what}_ns_per_neuron_step"] = st["median_s"] / neuron_steps * 1e9
            row[f"{what}_vs_src"] = session.paired(group, name, "srcext SRC")
        table[name] = row
    tm["layer_train_step_src"] = table["srcext SRC"]["train_s"]
    tm["layer_train_step_gru"] = table["nn.GRU"]["train_s"]
    results["ratio_spread"]["layer_step_vs_gru"] = table["nn.GRU"]["train_vs_src"]
    results["ratios"]["layer_step_vs_gru"] = table["nn.GRU"]["train_vs_src"]["median"]
    results["layers"] = table
    results["layer_input_density"] = density
    if missing:
        results["peers_missing"] = missing
    if device.type == "cuda":
        for name, key in (("srcext SRC", "src"), ("nn.GRU", "gru")):
            module, fwd, _ = layers[name]
            torch.cuda.reset_peak_memory_stats(device)
            train(module, fwd)()
            results[f"peak_memory_bytes_{key}_layer_step"] = torch.cuda.max_memory_allocated(device)


# --------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--T", type=int, default=None, help="time steps (cpu 220, cuda 500)")
    ap.add_argument("--B", type=int, default=None, help="batch (cpu 128, cuda 256)")
    ap.add_argument("--H", type=int, default=None, help="neurons (cpu 256, cuda 1024)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--rounds", type=int, default=11, help="timed rounds of each comparison (>= 7 for a report)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    ap.add_argument("--foreign", type=float, default=0.05, help="flag rounds where others used this share of CPUs")
    ap.add_argument("--peers", action="store_true", help="also snnTorch, SpikingJelly, Norse (if installed), LSTM")
    ap.add_argument("--density", type=float, default=0.05, help="fraction of ones in the layer input")
    ap.add_argument("--skip-compile", action="store_true", help="skip the torch.compile baseline")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend (tests: eager)")
    ap.add_argument("--skip-roofline", action="store_true", help="skip the kernels/copy roofline")
    ap.add_argument("--skip-layers", action="store_true", help="skip the layer comparison")
    ap.add_argument("--copy-mib", type=int, default=256, help="size of the copy of the roofline (MiB moved)")
    # The committed results are benchmarks/results/speed_<device>.json: refreshed by naming it.
    ap.add_argument("--out", default=None, help="JSON path (default runs/speed_<device>.json)")
    ap.add_argument("--projection", action="store_true", help="run benchmarks/projection_bench.py instead")
    ap.add_argument("--markdown", metavar="JSON", help="print docs/results.md's tables from a JSON of this script")
    args = ap.parse_args(argv)
    if args.projection:
        from projection_bench import main as projection_main

        return projection_main(
            ["--device", args.device, "--threads", str(args.threads)] + (["--out", args.out] if args.out else [])
        )
    if args.markdown:
        with open(args.markdown) as f:
            results = json.load(f)
        print(markdown(results))
        return results

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is visible")
    if not srcext.fused_available(device):
        ap.error(f"the fused kernels are not available for {device}: build srcext with them first")
    cuda = device.type == "cuda"
    T = args.T or (500 if cuda else 220)
    B = args.B or (256 if cuda else 128)
    H = args.H or (1024 if cuda else 256)
    torch.set_num_threads(args.threads)
    # A fresh dynamo per size: its recompile limit would otherwise fall back to eager silently.
    torch._dynamo.reset()
    session = Session(device, args.rounds, args.warmup, args.foreign)
    k = SRCConstants()
    dtype = torch.float32
    results = {
        **describe(device),
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "srcext": srcext.__version__,
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line("benchmarks/speed.py", argv),
        "T": T,
        "B": B,
        "H": H,
        "dtype": "float32",
        "checkpoint_interval": CHECKPOINT_INTERVAL,
        "rounds": args.rounds,
        "warmup_rounds": args.warmup,
        "compile_backend": args.compile_backend,
        "timings_s": {},
        "ratios": {},
        "ratio_spread": {},
        "stats": {},
    }
    out = args.out or os.path.join("runs", f"speed_{device.type}.json")
    # A run stopped early (a time limit's SIGTERM, an error in a later group) still writes what
    # it measured, marked incomplete: on a lent GPU there may be no second try.
    previous_handler = signal.signal(signal.SIGTERM, stopped_by_signal)
    try:
        run_groups(args, session, results, T, B, H, device, dtype, k, cuda)
    except BaseException as error:
        results["incomplete"] = f"stopped by {error!r}"
        write_json(out, results, indent=2)
        print(f"\nwrote the groups measured so far to {out} ({results['incomplete']})")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    results["contention"] = session.contention()

    print_report(results)
    write_json(out, results, indent=2)
    print(f"\nwrote {out}")
    return results


def stopped_by_signal(signum, frame):
    raise SystemExit(f"signal {signum}")


def run_groups(args, session, results, T, B, H, device, dtype, k, cuda):
    """The comparisons, in order; each fills its part of `results`."""
    u, bias, state = recurrence_inputs(T, B, H, device, dtype)

    if not args.skip_roofline:
        # First, in a fresh process: the eager contenders leave a large free heap behind, which
        # later big allocations reuse without the page faults a fused-only program takes.
        bench_kernels(session, results, u, bias, state, k, args.copy_mib * 2**20 // 8)
        # (on the CPU a call is synchronous: back to back only checks the code, cheaply)
        calls, repeats = (20, 5) if cuda else (3, 2)
        bench_kernel_timing(results, u, bias, state, k, args.copy_mib * 2**20 // 8, calls, repeats)

    def recurrence():
        impls = {"fused": src_recurrence_fused, "reference": src_recurrence_reference}
        if not args.skip_compile:
            impls["compiled"] = compiled_reference(
                torch.compile(src_cell_step, dynamic=False, backend=args.compile_backend)
            )
        bench_recurrence(session, results, u, bias, state, k, impls)
        if not args.skip_compile:
            from torch._dynamo.utils import counters

            results["compiled_unique_graphs"] = counters["stats"]["unique_graphs"]

    def layers():
        if not args.skip_layers:
            bench_layers(session, results, T, B, H, device, dtype, args.peers, args.density)

    if cuda:
        # On a GPU, the groups that compile nothing first: a run cut short by a lent machine's
        # time limit (torch.compile's first calls take the longest) still has them.
        bench_bf16(session, results, u, bias, state, k)
        layers()
        recurrence()
    else:
        recurrence()
        layers()


# The plain-words summary printed last: (ratio key, what it compares).
HEADLINES = [
    ("fwd_bwd_detached_vs_reference", "fused forward+backward", "the eager PyTorch loop"),
    ("fwd_bwd_detached_vs_compiled", "fused forward+backward", "the torch.compile'd loop"),
    ("inference_vs_reference", "fused inference", "the eager PyTorch loop"),
]


def print_report(results):
    print(
        f"\nsrcext speed — {machine_label(results)}, {results['threads']} threads, "
        f"T={results['T']} B={results['B']} H={results['H']} float32, {results['rounds']} interleaved "
        f"rounds after {results['warmup_rounds']} warm-up, commit {results['commit']}"
    )
    print(f"\n{'case':<52}{'median ms':>11}{'min ms':>10}{'IQR ms':>16}{'faults/call':>13}")
    for name, st in results["stats"].items():
        iqr = f"{st['q1_s'] * 1e3:.2f}-{st['q3_s'] * 1e3:.2f}"
        print(
            f"{name:<52}{st['median_s'] * 1e3:>11.2f}{st['min_s'] * 1e3:>10.2f}{iqr:>16}"
            f"{st['minor_faults_per_call'] + st['major_faults_per_call']:>13.0f}"
        )
    print(f"\n{'paired ratio (baseline time / fused time)':<52}{'median [q1, q3]':>24}{'min-max':>16}")
    for name, s in results["ratio_spread"].items():
        iqr = f"{s['median']:.2f} [{s['q1']:.2f}, {s['q3']:.2f}]"
        print(f"{name:<52}{iqr:>24}{s['min']:>8.2f}-{s['max']:.2f}")
    # The tables of docs/results.md: the recurrence, the roofline, the layers.
    print("\n" + markdown(results))
    # (the kernels' timing back to back and as graph replays: in the JSON, and gpu_summary.py's)
    if "bf16_speedup_vs_fp32" in results:
        print(f"bf16 vs fp32: {results['bf16_speedup_vs_fp32']:.2f}x")
    for name, why in results.get("peers_missing", {}).items():
        print(f"{name}: not installed ({why})")
    c = results["contention"]
    if c.get("foreign_median") is not None:
        flagged = f"more than {c['flagged_rounds_allowed']:.0%} of the rounds ran beside other work"
        print(
            f"\ncontention: other processes took {c['foreign_median']:.1%} of the CPUs in the median "
            f"round, {c['foreign_max']:.1%} at most; {c['flagged_rounds']}/{c['rounds']} rounds above "
            f"{c['foreign_limit']:.0%}" + (f" — FLAGGED: {flagged}; rerun on a quiet machine" if c["flagged"] else "")
        )
    elif c.get("rounds"):
        print("\ncontention: not measurable here (no /proc/stat); nothing flagged")
    print()
    for key, what, against in HEADLINES:
        if key in results["ratio_spread"]:
            s = results["ratio_spread"][key]
            print(
                f"{what}: {s['median']:.1f}x faster than {against} "
                f"(median of {results['rounds']} paired rounds; {s['min']:.1f}x-{s['max']:.1f}x)"
            )


def fmt_ms(seconds: float) -> str:
    """A time in ms, to 0.1 ms from 10 ms up and to 0.01 ms below (GPU kernels take < 1 ms)."""
    ms = seconds * 1e3
    return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def fmt_ns(ns: float) -> str:
    return f"{ns:.1f}" if ns >= 1 else f"{ns:.3f}"


def markdown(results) -> str:
    """docs/results.md's speed tables (Markdown) from a run's results."""
    tm, sp = results["timings_s"], results["ratio_spread"]

    def ms(key):
        return fmt_ms(tm[key]) if key in tm else ""

    def ratio(key):
        if key not in sp:
            return ""
        s = sp[key]
        return f"**{s['median']:.1f}x** ({s['q1']:.1f}-{s['q3']:.1f})"

    c = results.get("contention") or {}
    busy = (
        f"; {c['flagged_rounds']} of {c['rounds']} rounds busy" + (" (FLAGGED)" if c["flagged"] else "")
        if "flagged_rounds" in c
        else ""
    )
    # One line above each table: the machine and sources it was measured on.
    caption = (
        f"*{machine_label(results)}, {results['threads']} threads, commit {results.get('commit', '?')}, "
        f"{str(results.get('date', '?'))[:10]}{busy}*"
    )
    lines = [
        caption,
        f"| recurrence (T={results['T']}, B={results['B']}, H={results['H']}) | fused | eager loop "
        "| fused speedup | torch.compile(step) | speedup vs compiled |",
        "|---|---|---|---|---|---|",
    ]
    for what, label in (("forward", "forward"), ("fwd_bwd", "forward + backward")):
        for tag, flag in (("detached", "detach_recurrent=True"), ("bptt", "exact BPTT")):
            g = f"recurrence_{what}_{tag}"
            lines.append(
                f"| {label}, {flag} | {ms(g + '_fused')} | {ms(g + '_reference')} | "
                f"{ratio(f'{what}_{tag}_vs_reference')} | {ms(g + '_compiled')} | "
                f"{ratio(f'{what}_{tag}_vs_compiled')} |"
            )
    lines.append(
        f"| inference (no grad) | {ms('recurrence_inference_fused')} | "
        f"{ms('recurrence_inference_reference')} | {ratio('inference_vs_reference')} | | |"
    )
    roof = results.get("roofline")
    if roof:
        lines += [
            "",
            caption,
            "| kernel (no autograd) | time | moves | of copy bandwidth |",
            "|---|---|---|---|",
        ]
        for name, e in roof["kernels"].items():
            f = e["fraction_of_copy"]
            lines.append(
                f"| {name.replace('_', ' ')} | {fmt_ms(e['time_s'])} | "
                f"{e['bytes'] / 2**20:.0f} MiB, {e['bytes_per_s'] / 1e9:.1f} GB/s | "
                f"{f['median']:.0%} ({f['q1']:.0%}-{f['q3']:.0%}) |"
            )
        lines.append(
            f"| copy ({roof['copy_bytes'] / 2**20:.0f} MiB moved) | {ms('kernel_copy')} | | "
            f"{roof['copy_bytes_per_s'] / 1e9:.1f} GB/s |"
        )
    if "layers" in results:
        lines += [
            "",
            caption,
            f"| layer, {results['H']} -> {results['H']}, T={results['T']}, B={results['B']} | "
            "training step | ns / neuron-step | vs SRC | inference | ns / neuron-step | vs SRC "
            "| firing rate |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, r in results["layers"].items():
            rate = (
                "-" if r["firing_rate"] is None else "0" if r["firing_rate"] == 0 else f"{100 * r['firing_rate']:.2g} %"
            )
            lines.append(
                f"| {name} | {fmt_ms(r['train_s'])} | {fmt_ns(r['train_ns_per_neuron_step'])} | "
                f"{r['train_vs_src']['median']:.2f}x | {fmt_ms(r['inference_s'])} | "
                f"{fmt_ns(r['inference_ns_per_neuron_step'])} | {r['inference_vs_src']['median']:.2f}x "
                f"| {rate} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
