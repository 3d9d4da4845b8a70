"""tools/sass_report.py: the loop analysis on a hand-written SASS listing (always), and the
report of the current f32 kernels (where nvcc and cuobjdump are present; about 10 s). The
tuning targets are checked by `sass_report.py --check`; here, that the committed report
(benchmarks/results/sass_sm90.json) meets them and is the report of the current sources."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "sass_report.py")
COMMITTED = os.path.join(ROOT, "benchmarks", "results", "sass_sm90.json")


def load():
    spec = importlib.util.spec_from_file_location("sass_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sass_report"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


sr = load()


def committed_report() -> dict:
    with open(COMMITTED) as f:
        return json.load(f)


# A time loop (0x20..0xe0) with: a load of the next step's input (R3, copied to R2 -- the copy
# waits for the load -- and used by the next iteration's FFMA), a checkpoint block guarded by
# `t % 16` (periodic), a division whose slow path is a CALL (cold), and one per-step output
# store.
LISTING = """
	Function : _ZN6srcext4cuda18src_forward_kernelIffLb1EEEvNS_13ForwardParamsE
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   LDG.E R2, desc[UR4][R4.64] ;
        /*0020*/                   LDG.E R3, desc[UR4][R6.64] ;
        /*0030*/                   LOP3.LUT P0, RZ, R9, 0xf, RZ, 0xc0, !PT ;
        /*0040*/               @P0 BRA 0x70 ;
        /*0050*/                   STG.E desc[UR4][R10.64], R5 ;
        /*0060*/                   STG.E desc[UR4][R12.64], R5 ;
        /*0070*/                   FFMA R2, R2, R2, R2 ;
        /*0080*/               @P1 BRA 0xb0 ;
        /*0090*/                   CALL.REL.NOINC 0x100 ;
        /*00a0*/                   BRA 0xc0 ;
        /*00b0*/                   MUFU.EX2 R2, R2 ;
        /*00c0*/                   STG.E desc[UR4][R14.64], R2 ;
        /*00d0*/                   MOV R2, R3 ;
        /*00e0*/              @!P2 BRA 0x20 ;
        /*00f0*/                   EXIT ;
        /*0100*/                   RET.REL.NODEC R0 0x0 ;
        /*0110*/                   BRA 0x110;
"""


def test_loop_model_on_a_listing():
    funcs = sr.parse_sass(LISTING)
    (instrs,) = funcs.values()
    assert sr.instance_of(
        "void srcext::cuda::src_forward_kernel<float, float, true, false>(srcext::ForwardParams)"
    ) == ("forward", {"save": True, "lengths": False, "lanes": 1})
    assert sr.instance_of(
        "void srcext::cuda::src_forward_kernel<c10::BFloat16, float, true, false, true, 2>(srcext::ForwardParams)"
    ) == ("forward", {"save": True, "lengths": False, "per_neuron": True, "lanes": 2})
    # The one-lane fallback of a paired storage type is named apart; double has only it.
    assert sr.variant_name("forward", {"save": True, "lanes": 1}, "bf16") == "training+1lane"
    assert sr.variant_name("forward", {"save": True, "lanes": 2}, "bf16") == "training"
    assert sr.variant_name("forward", {"save": False, "lanes": 1}, "f64") == "inference"
    assert sr.instance_of(
        "void srcext::cuda::src_exact_backward_kernel<float, float, false, true>(srcext::BackwardParams)"
    ) == ("backward", {"detach_recurrent": False, "straight_through": False, "lengths": True})
    assert (
        sr.variant_name("backward", {"detach_recurrent": False, "straight_through": True, "lengths": True})
        == "exact+st+lengths"
    )
    # The detached backward: its own kernel, with lanes.
    detached = sr.instance_of(
        "void srcext::cuda::src_detached_backward_kernel<c10::BFloat16, float, true, false, false, false, 2>"
        "(srcext::BackwardParams)"
    )
    assert detached == (
        "backward",
        {
            "detach_recurrent": True,
            "straight_through": True,
            "lengths": False,
            "per_neuron": False,
            "constant_grads": False,
            "lanes": 2,
        },
    )
    assert sr.variant_name(*detached, "bf16") == "detach+st"
    one = dict(detached[1], lanes=1)
    assert sr.variant_name("backward", one, "bf16") == "detach+st+1lane"
    assert sr.variant_name("backward", dict(one, per_neuron=True), "bf16") == "detach+st+per_neuron"
    assert sr.variant_name("backward", one, "f32") == "detach+st"  # f32: one lane only
    r = sr.analyse_function(instrs, 16)
    assert r["loop"]["head"] == "0x20" and r["loop"]["tail"] == "0xe0"
    assert r["loop"]["time_loops_found"] == 1  # the trailing `BRA self` holds no store
    assert r["steps_per_iteration"] == 1
    (periodic,) = r["loop"]["periodic_blocks"]
    assert periodic["instructions"] == 2 and periodic["by"] == "counter mask"
    # always: LDG LOP3 BRA FFMA BRA MUFU STG MOV BRA = 9; two stores at 1/16; the CALL path 0
    ips = r["instructions_per_step"]
    assert ips["total"] == pytest.approx(9 + 2 / 16, abs=0.01)
    assert ips["memory"] == pytest.approx(2 + 2 / 16, abs=0.01)
    assert ips["control"] == 3 and ips["mufu"] == 1 and ips["float_arith"] == 1
    assert sum(ips[k] for k in sr.KINDS) == pytest.approx(ips["total"], abs=0.05)
    # The load's first reader is the register copy (MOV R2, R3 waits on the load's scoreboard
    # like any reader): 9 instructions of the path (the CALL path is not on it).
    (load_info,) = r["loads"]["per_load"]
    assert load_info["instructions_to_use"] == 9 and load_info["after_store"] is False
    assert r["loads"]["min_steps_ahead"] == pytest.approx(9 / (9 + 2 / 16), abs=0.01)
    # No prefetch: the DRAM lead is the register lead, and no L2 rows apply.
    assert load_info["prefetch_instructions_ahead"] is None
    assert load_info["dram_steps_ahead"] == load_info["steps_ahead"]
    assert r["loads"]["l2_median_steps_ahead"] is None
    assert r["loads"]["fraction_covered_by_prefetch"] == 0


# A backward-like loop (0x40..0x110) over two streams, parameters u at c[0x0][0x380] and g at
# c[0x0][0x388]: u's pointer (R4:R5, loop-carried, stepped by R8) is prefetched at the top
# (CCTL.E.PF2, one a step like its load) and loaded further down; g is loaded without a
# prefetch; its pointer R6:R7 comes from a uniform register (ULDC.64). One output store a step.
PREFETCH_LISTING = """
	Function : _ZN6srcext4cuda19src_backward_kernelIffLb0ELb0ELb0EEEvNS_14BackwardParamsE
        /*0000*/                   IMAD.WIDE R4, R0, 0x4, c[0x0][0x380] ;
        /*0010*/                   ULDC.64 UR6, c[0x0][0x388] ;
        /*0020*/                   IADD3 R6, P0, R0, UR6, RZ ;
        /*0030*/                   IADD3.X R7, RZ, UR7, RZ, P0, !PT ;
        /*0040*/                   IADD3 R10, P1, R4, R8, RZ ;
        /*0050*/                   IADD3.X R11, R5, R9, RZ, P1, !PT ;
        /*0060*/                   CCTL.E.PF2 [R10] ;
        /*0070*/                   LDG.E.CONSTANT R2, desc[UR4][R4.64] ;
        /*0080*/                   LDG.E.CONSTANT R3, desc[UR4][R6.64] ;
        /*0090*/                   FFMA R12, R12, R12, R12 ;
        /*00a0*/                   FFMA R12, R12, R12, R12 ;
        /*00b0*/                   FFMA R12, R2, R3, R12 ;
        /*00c0*/                   STG.E desc[UR4][R14.64], R12 ;
        /*00d0*/                   IADD3 R4, P1, R4, R8, RZ ;
        /*00e0*/                   IADD3.X R5, R5, R9, RZ, P1, !PT ;
        /*00f0*/                   IADD3 R6, P1, R6, R8, RZ ;
        /*0100*/                   IADD3.X R7, R7, R9, RZ, P1, !PT ;
        /*0110*/              @!P2 BRA 0x40 ;
        /*0120*/                   EXIT ;
"""


def test_prefetch_covers_the_loads_of_its_stream():
    funcs = sr.parse_sass(PREFETCH_LISTING)
    (instrs,) = funcs.values()
    r = sr.analyse_function(instrs, 16, pointer_params={0x380, 0x388})
    assert r["steps_per_iteration"] == 1
    per_step = r["instructions_per_step"]["total"]
    assert per_step == 14  # 0x40 .. 0x110
    assert r["loads"]["prefetches_per_step"] == 1
    u_load, g_load = r["loads"]["per_load"]
    assert u_load["stream"] == "c[0x0][0x380]" and g_load["stream"] == "c[0x0][0x388]"
    # Both used by the FFMA at 0xb0: u 4, g 3 instructions on.
    assert u_load["instructions_to_use"] == 4 and g_load["instructions_to_use"] == 3
    # u: the prefetch of the iteration before (at path position 2) is 14 - 2 + 3 = 15
    # instructions ahead of the load (path position 3).
    assert u_load["prefetch_instructions_ahead"] == 15
    assert u_load["dram_steps_ahead"] == pytest.approx(15 / 14, abs=0.01)
    # g: no prefetch of its stream, so its DRAM lead is its register lead.
    assert g_load["prefetch_instructions_ahead"] is None
    assert g_load["dram_steps_ahead"] == g_load["steps_ahead"]
    loads = r["loads"]
    assert loads["fraction_covered_by_prefetch"] == 0.5
    assert loads["l2_min_steps_ahead"] == loads["l2_median_steps_ahead"] == pytest.approx(4 / 14, abs=0.01)
    assert loads["min_dram_steps_ahead"] == pytest.approx(3 / 14, abs=0.01)
    # Without the parameter table no stream is known: nothing counts as covered.
    r2 = sr.analyse_function(instrs, 16)
    assert all(ld["prefetch_instructions_ahead"] is None for ld in r2["loads"]["per_load"])
    # The prefetch moved to g's stream covers g's load (14 - 2 + 4) and no longer u's.
    other = PREFETCH_LISTING.replace("CCTL.E.PF2 [R10]", "CCTL.E.PF2 [R6]")
    (instrs3,) = sr.parse_sass(other).values()
    r3 = sr.analyse_function(instrs3, 16, pointer_params={0x380, 0x388})
    assert [ld["prefetch_instructions_ahead"] for ld in r3["loads"]["per_load"]] == [None, 16]
    # Fewer prefetches of a stream an iteration than loads of it cover nothing.
    twice = PREFETCH_LISTING.replace("LDG.E.CONSTANT R3, desc[UR4][R6.64]", "LDG.E.CONSTANT R3, desc[UR4][R4.64+0x4]")
    (instrs5,) = sr.parse_sass(twice).values()
    r5 = sr.analyse_function(instrs5, 16, pointer_params={0x380, 0x388})
    assert [ld["stream"] for ld in r5["loads"]["per_load"]] == ["c[0x0][0x380]"] * 2
    assert all(ld["prefetch_instructions_ahead"] is None for ld in r5["loads"]["per_load"])
    # A pointer computed from both parameters belongs to no single stream.
    mixed = PREFETCH_LISTING.replace("IADD3 R10, P1, R4, R8, RZ", "IADD3 R10, P1, R4, R6, RZ")
    (instrs4,) = sr.parse_sass(mixed).values()
    r4 = sr.analyse_function(instrs4, 16, pointer_params={0x380, 0x388})
    assert all(ld["prefetch_instructions_ahead"] is None for ld in r4["loads"]["per_load"])


def test_pointer_params_from_the_elf_listing():
    elf = """
.nv.info._ZN6srcext4cuda19src_backward_kernelIffLb0ELb0ELb0EEEv
	Attribute:	EIATTR_KPARAM_INFO
	Value:	Index : 0x0	Ordinal : 0x3	Offset  : 0x118	Size    : 0x8
	Attribute:	EIATTR_KPARAM_INFO
	Value:	Index : 0x0	Ordinal : 0x1	Offset  : 0xe0	Size    : 0x2c
.nv.info._ZN6srcext4cuda18src_forward_kernelIffLb0ELb0EEEv
	Attribute:	EIATTR_KPARAM_INFO
	Value:	Index : 0x0	Ordinal : 0x2	Offset  : 0x110	Size    : 0x8
"""
    assert sr.parse_pointer_params(elf) == {
        "_ZN6srcext4cuda19src_backward_kernelIffLb0ELb0ELb0EEEv": {0x210 + 0x118},
        "_ZN6srcext4cuda18src_forward_kernelIffLb0ELb0EEEv": {0x210 + 0x110},
    }


def test_store_only_guard_is_periodic_and_data_guards_run():
    listing = LISTING.replace("LOP3.LUT P0, RZ, R9, 0xf, RZ, 0xc0, !PT", "ISETP.NE.AND P0, PT, R9, RZ, PT")
    (instrs,) = sr.parse_sass(listing).values()
    r = sr.analyse_function(instrs, 16)
    assert r["loop"]["periodic_blocks"][0]["by"] == "store-only"
    # A guard around math (e.g. `j < len`) is taken as executed in the steady state.
    listing = listing.replace("STG.E desc[UR4][R10.64], R5", "FADD R5, R5, R5").replace(
        "STG.E desc[UR4][R12.64], R5", "FMUL R5, R5, R5"
    )
    (instrs,) = sr.parse_sass(listing).values()
    r = sr.analyse_function(instrs, 16)
    assert r["loop"]["periodic_blocks"] == []
    assert r["instructions_per_step"]["total"] == pytest.approx(11, abs=0.01)


def test_check_lists_each_miss():
    def entry(dtype, direction, flags, total, regs=64, dconv=0):
        return {
            "dtype": dtype,
            "direction": direction,
            "flags": flags,
            "registers": regs,
            "spills_bytes": 0,
            "double_conversions_in_loop": dconv,
            "instructions_per_step": {"total": total},
            "loads": {
                "median_over_littles_law": 1.0,
                "min_dram_steps_ahead": 1.0,
                "fraction_after_store": 0.0,
                "l2_median_over_littles_law": None,
                "l2_min_over_one_step": None,
            },
        }

    good = {
        "kernels": {
            "f32/forward/training": entry("f32", "forward", {"save": True}, 60),
            "bf16/backward/detach": entry(
                "bf16", "backward", {"detach_recurrent": True, "straight_through": False}, 90
            ),
            "f32/backward/exact": entry("f32", "backward", {"detach_recurrent": False, "straight_through": False}, 110),
            "f64/backward/exact": entry(
                "f64",
                "backward",  # f64 has no targets
                {"detach_recurrent": False, "straight_through": False},
                300,
                regs=236,
                dconv=3,
            ),
        }
    }
    assert sr.check(good) == []
    bad = json.loads(json.dumps(good))
    bad["kernels"]["f32/forward/training"]["instructions_per_step"]["total"] = 61
    bad["kernels"]["f32/forward/training"]["double_conversions_in_loop"] = 3
    bad["kernels"]["bf16/backward/detach"]["registers"] = 130
    bad["kernels"]["bf16/backward/detach"]["loads"]["min_dram_steps_ahead"] = 0.99
    bad["kernels"]["f32/forward/training"]["loads"]["median_over_littles_law"] = 0.9
    bad["kernels"]["f32/backward/exact"]["loads"]["fraction_after_store"] = 0.03
    bad["kernels"]["f64/backward/exact"]["loads"]["min_dram_steps_ahead"] = 0.1  # no f64 target
    # prefetched loads: their L2 rows apply (None means no prefetch: met)
    bad["kernels"]["f32/backward/exact"]["loads"]["l2_median_over_littles_law"] = 0.94
    bad["kernels"]["f32/backward/exact"]["loads"]["l2_min_over_one_step"] = 1.5
    misses = sr.check(bad)
    assert len(misses) == 8  # the bf16 detached registers miss two targets (default, every instance)
    assert any("f32/backward/exact: loads.l2_median_over_littles_law = 0.94 < 1" in m for m in misses)
    assert any("f32/forward/training: instructions_per_step.total = 61" in m for m in misses)
    assert any("bf16/backward/detach: registers = 130 > 128" in m for m in misses)
    assert any("bf16/backward/detach: loads.min_dram_steps_ahead = 0.99 < 1" in m for m in misses)
    assert any("f32/forward/training: loads.median_over_littles_law = 0.9 < 1" in m for m in misses)
    assert any("f32/backward/exact: loads.fraction_after_store = 0.03 > 0" in m for m in misses)


def test_littles_law_steps():
    # 4.8 TB/s x 600 ns = 2.88 MB in flight; f32 backward at 128 registers: 2 blocks of 256 on
    # 132 SMs, 12.75 bytes a step -> 3.34 steps; bf16 forward inference at 32 registers: all
    # 262,144 threads resident, 4 bytes a step -> 2.75 steps.
    assert sr.littles_law_steps("f32", "backward", {}, 128) == pytest.approx(3.342, abs=0.01)
    assert sr.littles_law_steps("bf16", "forward", {"save": False}, 32) == pytest.approx(2.747, abs=0.01)
    # Two lanes: half the threads (131,072), each moving twice the bytes a step; at 52 registers
    # 4 blocks of 256 fit an SM (135,168 threads): all resident, one wave, 2.75 steps again.
    two = {"save": False, "lanes": 2}
    assert sr.littles_law_steps("bf16", "forward", two, 52) == pytest.approx(2.747, abs=0.01)
    assert sr.h200_waves(52, 2) == pytest.approx(0.97, abs=0.01)
    assert sr.h200_waves(60, 1) == pytest.approx(1.94, abs=0.01)  # the one-lane f32 forward before


def test_skips_cleanly_without_tools(monkeypatch, capsys, tmp_path):
    def missing():
        raise sr.ToolsMissing("no nvcc (test)")

    monkeypatch.setattr(sr, "find_tools", missing)
    assert sr.main(["--dtypes", "f32", "--out", str(tmp_path / "x.json"), "--check"]) == 0
    assert "skipped: no nvcc (test)" in capsys.readouterr().out
    assert not (tmp_path / "x.json").exists()


def test_report_of_the_f32_kernels(tmp_path):
    try:
        sr.find_tools()
    except sr.ToolsMissing as e:
        pytest.skip(f"sass_report needs the CUDA toolkit: {e}")
    out = tmp_path / "sass.json"
    p = subprocess.run(
        [sys.executable, SCRIPT, "--dtypes", "f32", "--per-load", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["arch"] == "sm_90" and "release" in report["nvcc"]
    assert report["git_commit"] and report["checkpoint_interval"] >= 1
    K = report["checkpoint_interval"]
    kernels = report["kernels"]
    variants = [
        "f32/forward/inference",
        "f32/forward/training",
        "f32/backward/detach",
        "f32/backward/detach+st",
        "f32/backward/exact",
        "f32/backward/exact+st",
    ]
    variants += [v + "+lengths" for v in variants]
    # Per-neuron constants, and (backward) with their gradients (issue 13).
    variants += [v + "+per_neuron" for v in variants] + [
        v + "+per_neuron+constant_grads" for v in variants if "backward" in v
    ]
    # The forward's one-lane fallback (H odd, or unaligned tensors) beside its two-lane default.
    variants += [v + "+1lane" for v in variants if "forward" in v]
    assert sorted(kernels) == sorted(variants)
    assert "f32/backward/exact+st" in p.stdout  # the table
    for key, e in kernels.items():
        assert e["dtype"] == "f32" and key.split("/")[1] == e["direction"]
        assert 16 <= e["registers"] <= 255 and e["registers"] == e["registers_res_usage"]
        assert e["spills_bytes"] >= 0 and e["stack_bytes"] >= 0
        ips = e["instructions_per_step"]
        assert set(ips) == {"total", *sr.KINDS}
        assert all(v >= 0 for v in ips.values())
        assert sum(ips[k] for k in sr.KINDS) == pytest.approx(ips["total"], abs=0.1)
        assert 20 <= ips["total"] <= 400, key
        # Each step: the cell's three exponentials (MUFU.EX2 in float) per cell step computed
        # (1.5 in the exact backward, which runs half of each chunk twice), float math, memory.
        cell_steps = 1.5 if key.split("/")[1] == "backward" and "/exact" in key else 1.0
        assert e["cell_steps_per_step"] == cell_steps, key
        assert ips["mufu"] >= 3 and e["mufu_ex2_tanh_per_step"] == pytest.approx(3 * cell_steps, abs=0.1)
        # Per neuron-step: a two-lane forward loads and stores both lanes with one access.
        lanes = e.get("lanes", 1)
        assert lanes == (1 if "+1lane" in key or "backward" in key else 2), key
        assert ips["float_arith"] >= 10 and ips["memory"] >= 2 / lanes
        assert e["global_stores_per_step"] >= 1
        assert e["double_conversions_in_loop"] >= 0
        # Step detection: per-step output stores against the count of exponentials.
        steps = e["steps_per_iteration"]
        det = e["step_detection"]
        assert det["by_output_stores"] == steps >= 1
        assert det["by_transcendentals"] == pytest.approx(steps, abs=0.5), (key, det)
        assert e["loads"]["per_load"], key
        assert all(ld["instructions_to_use"] is None or ld["instructions_to_use"] > 0 for ld in e["loads"]["per_load"])
    # The forward walks one step per iteration (or an unrolled few) and loads u once a step;
    # the backward recomputes and walks back whole chunks, loading u and grad_spikes a step.
    for v in ("inference", "training"):
        e = kernels[f"f32/forward/{v}"]
        assert 1 <= e["global_loads_per_step"] <= 1.5
        assert K % e["steps_per_iteration"] == 0
    train, infer = kernels["f32/forward/training"], kernels["f32/forward/inference"]
    assert train["global_stores_per_step"] >= 1 + 3 / K - 0.01  # + the checkpoint, 1 in K steps
    assert infer["global_stores_per_step"] == pytest.approx(1, abs=0.01)
    for v in ("detach", "detach+st", "exact", "exact+st"):
        e = kernels[f"f32/backward/{v}"]
        assert e["steps_per_iteration"] == K
        assert 2 + 3 / K - 0.01 <= e["global_loads_per_step"] <= 2.5  # + the checkpoint
        assert e["global_stores_per_step"] == pytest.approx(1, abs=0.01)
    # Exact BPTT prefetches into L2 what its next chunk loads (src_recurrence_kernels.cuh): every load of
    # its loop is recognised as covered by a prefetch of its own stream (u, grad_spikes,
    # checkpoints: three pointer parameters), a whole chunk minus the FIFO ahead; the detached
    # backward and the forward issue no prefetch.
    for v in ("exact", "exact+st"):
        loads = kernels[f"f32/backward/{v}"]["loads"]
        assert loads["prefetches_per_step"] >= 2, v
        assert loads["fraction_covered_by_prefetch"] == 1, v
        assert len({ld["stream"] for ld in loads["per_load"]}) == 3, v
        assert loads["min_dram_steps_ahead"] >= (2 * K - 8) / 2 * 0.9, v
    for v in ("detach", "detach+st"):
        assert kernels[f"f32/backward/{v}"]["loads"]["fraction_covered_by_prefetch"] == 0
    assert kernels["f32/forward/training"]["loads"]["prefetches_per_step"] == 0
    # The committed report is this build's: with the same nvcc, every f32 instance has the
    # registers, spills and instruction counts committed (a kernel change regenerates it).
    committed = committed_report()
    if committed["nvcc"] == report["nvcc"]:
        for key, e in kernels.items():
            c = committed["kernels"][key]
            assert (c["registers"], c["spills_bytes"]) == (e["registers"], e["spills_bytes"]), key
            assert c["instructions_per_step"] == e["instructions_per_step"], key


def test_committed_report_meets_every_target():
    """Issue 17's targets (sass_report.TARGETS) hold for every instance of the committed report,
    and every instance of every dtype is in it."""
    report = committed_report()
    assert sr.check(report) == []
    dtypes = {e["dtype"] for e in report["kernels"].values()}
    assert dtypes == set(sr.DTYPES)
    # 8 forward (and as many one-lane ones for the paired storage types) and 24 backward instances
    # per dtype (test_report_of_the_f32_kernels names them), and 4 one-lane detached backward
    # ones of 16-bit storage (per-layer constants, with lengths or not, both gradient settings).
    for dtype in dtypes:
        forwards = 16 if dtype in sr.PAIRED_DTYPES["forward"] else 8
        backwards = 28 if dtype in sr.PAIRED_DTYPES["backward"] else 24
        for direction, count in (("forward", forwards), ("backward", backwards)):
            assert sum(key.startswith(f"{dtype}/{direction}/") for key in report["kernels"]) == count, dtype
