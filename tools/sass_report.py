"""SASS report of the CUDA kernels (sm_90): registers, spills, stack, and the instructions per
neuron-step of each kernel instance's steady-state time loop, split by kind.

    python tools/sass_report.py                  # all dtypes; JSON + table
    python tools/sass_report.py --check          # also compare with TARGETS; exit 1 on a miss
    python tools/sass_report.py --dtypes f32 --out /tmp/s.json
    python tools/sass_report.py --per-load --out /tmp/s.json   # also every load's record

Needs nvcc (sm_90) and cuobjdump; without them it prints why and exits 0 (a skip).
Tools: nvcc from $CUDA_HOME/bin, else the `nvcc` on PATH (a wrapper script that `exec`s the
real one is followed to it); cuobjdump next to that nvcc, else on PATH, else the copy that the
`triton` wheel bundles (the toolkit in this project's CI image ships none). Names are
demangled with cu++filt or c++filt.

Method
------
Compilation: each csrc/recurrence/cuda/src_recurrence_cuda_{dtype}.cu to a cubin with `nvcc -cubin -arch=sm_90`, the
flags setup.py passes to nvcc (-O3 -lineinfo --expt-relaxed-constexpr) and the ones torch's
CUDAExtension adds that matter for code generation (-std=c++20, the __CUDA_NO_HALF*/BFLOAT16
conversion macros, TORCH_API_INCLUDE_EXTENSION_H, TORCH_EXTENSION_NAME),
at most two in parallel. Registers, stack and spills come from `ptxas -v` (cross-checked with
`cuobjdump -res-usage`).

Time loop: a backward branch (target <= its own address) whose range [target, branch] holds a
global store is a time loop; the kernel's steady-state loop is the one covering the most
steps per iteration (a compiler remainder loop covers fewer). Nested loops inside it are
flagged (`nested_loops`), not weighed.

Steady-state path: the basic blocks of the loop body get execution frequencies per iteration,
propagated in address order from the loop head (frequency 1) along the branch edges:
  * a successor block holding a CALL (the slow path of an IEEE division or of a library
    function, taken only for out-of-range operands) gets 0, the other successor all;
  * a block guarded by a test of the low bits of a counter (`LOP3.LUT P, RZ, R, K-1, ...`,
    i.e. `t % K == 0` with K = kCheckpointInterval read from csrc/recurrence/src_recurrence_params.h), or a guarded
    region holding only stores and integer work (no float math, MUFU or loads), is periodic:
    it runs once every K steps, so in an iteration of S steps it gets S/K (the checkpoint
    stores of the training forward).
    These are weighed in (not reported separately), and listed under `periodic_blocks`;
  * any other conditional branch: the fall-through (the guarded code: `j < len`, `t + 1 < T`)
    runs, the skip is not taken -- the steady state of a full chunk / long sequence;
  * edges leaving the loop are ignored.
Predicated instructions count as executed (they issue either way). The counts per step are
the frequency-weighted instruction counts of the iteration divided by steps per iteration.

Steps per iteration: every step writes exactly one per-step output (spikes in the forward,
grad_u in the backward) with one global store, so steps = the number of unpredicated STG with
frequency 1 in the iteration to the output's stream (the pointer parameter stored to most:
output_stores; periodic stores excluded, and checkpoints stored every iteration where an
iteration is K steps; a predicated store is a conditional
one, e.g. checkpoint stores the compiler turned into `@!P STG`: those count as issued
instructions every step, which they are, but not as steps; should every store of the loop be
predicated, steps fall back on the exponentials below, and `step_detection.method` says so).
Independent check (`step_detection.by_transcendentals`):
the MUFU.EX2/MUFU.TANH count of the iteration divided by TRANSCENDENTALS_PER_STEP (the cell's
three exponentials; the backward reuses the forward's, recomputed once per step) times the
cell steps per step (`cell_steps_per_step`: 1, or 1 + kExactSplit / kChunk = 1.5 in the
float-math exact backward, which runs the first half of each chunk twice), for the
float-math instances (f64 has no MUFU exp). It agrees to within one exponential per iteration
(the detached backward has 47 of 48: the compiler drops one whose result is unused).

Kinds (disjoint; `total` is their sum): memory = global/local/shared loads and stores
(LDG, STG, LD, ST, LDL, STL, LDS, STS, atomics; constant-bank LDC/ULDC are `other`); mufu =
MUFU.* (EX2, RCP, TANH, RCP64H); double = D* arithmetic and any instruction with an F64
operand, the F2F.F32.F64 / F2F.F64.F32 conversions included (these are also counted on their
own as `double_conversions_in_loop`, per step); conversion = the other F2F, F2I, I2F, F2FP,
I2I, FRND; float_arith = FFMA, FADD, FMUL, FMNMX, FSEL, FSETP, HFMA2 ...; control = BRA,
BSSY, BSYNC, CALL, RET, EXIT, WARPSYNC ...; other = integer, moves, predicates, uniform ops.

Loads ahead of use: for every global load of the iteration, the distance, in instructions of
the steady-state path, to the first instruction that reads its register (a register copy
included: a MOV waits on the load's scoreboard like any reader; the search wraps over the back
edge into the next iteration), and that distance in steps (divided by the instructions per
step; a bf16 widening counts where it stands).
Prefetches (`prefetch.global.L2`, CCTL.E.PF2): every global load and prefetch gets its address
stream, the one pointer parameter its address derives from (constant-bank offsets of the
8-byte parameters from the cubin's EIATTR_KPARAM_INFO; origins propagated through the kernel
and once more around the loop; none or several: no stream). A load is covered when the loop
prefetches its stream at least as often as it loads it; its DRAM lead (`dram_steps_ahead`) is
then counted from the stream's last prefetch of the iteration before (the kernels' contract:
an iteration prefetches what the next one loads; the last prefetch is the latest any covering
one can be, a lower bound), and its own register lead has to cover an L2 hit only
(L2_LATENCY). Uncovered loads: DRAM lead = register lead. `after_store` marks loads issued after a global
store of the same iteration: without `__restrict__` the compiler cannot move them above the
store, so they are serialised behind it. Summaries: `loads.min_steps_ahead`,
`loads.mean_steps_ahead`, `loads.median_steps_ahead`, `loads.fraction_after_store`. The
steps are those of the steady-state loop: instructions of the path between issue and first
use over the loop's instructions per step (a backward chunk's recompute and walk of a step
together), so a lead measured across the recompute counts in whole steps, not recompute steps.
--check holds f32/bf16, in both kernels, to a median DRAM lead of at least
`loads.littles_law_steps` (the lead Little's law asks of the instance at the H200 model size,
from its registers and bytes per step: `littles_law_steps`), a fewest of one step, for covered
loads a median register lead of at least `loads.l2_littles_law_steps` (the same scaled by
L2_LATENCY / latency) and a fewest of that ratio of a step, and no backward load after a store
(TARGETS; GPU_NOTES.md justifies the numbers).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import datetime
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = ("f32", "f64", "bf16", "f16")
DEFAULT_OUT = os.path.join(ROOT, "benchmarks", "results", "sass_sm90.json")
ARCH = "sm_90"
TRANSCENDENTALS_PER_STEP = 3  # the cell's exp(2 x) of tanh, and its two sigmoids
MAX_ITERATIONS_AHEAD = 32  # how far the load-to-use search follows a value
KINDS = ("memory", "mufu", "float_arith", "conversion", "double", "control", "other")


class AtLeast(float):
    """A lower limit in TARGETS (a plain number is an upper limit)."""


class AtLeastIfAny(AtLeast):
    """A lower limit on a metric that may not apply to an instance (None: met)."""


# Little's law for the loads ahead (GPU_NOTES.md): the bytes in flight at full bandwidth,
# BANDWIDTH x LATENCY, shared by the resident threads of the model size; a thread moving B
# bytes a step (loads and stores) must have its loads issued that many bytes' worth of steps
# ahead: steps = BANDWIDTH x LATENCY / (resident threads x B). Model size: T=500, B=256, H=1024.
H200 = dict(bandwidth=4.8e12, latency=600e-9, sms=132, registers_per_sm=65536, threads_per_sm=2048, threads=256 * 1024)
# L2 hit latency for loads covered by a prefetch (GPU_NOTES.md, "Prefetch into L2"): public H100
# microbenchmarks put an unloaded L2 hit at ~260 cycles (~150 ns at ~1.75 GHz), about half the
# unloaded DRAM latency; the model takes half of its 600 ns DRAM latency (a model value, not a
# measurement). A load whose DRAM part a prefetch has in flight must itself be issued
# L2_LATENCY / latency of Little's-law lead ahead.
L2_LATENCY = 300e-9
BLOCK = 256  # kThreads
DTYPE_BYTES = {"f32": (4, 4), "f64": (8, 8), "bf16": (2, 4), "f16": (2, 4)}  # (storage, math)


def resident_threads(registers) -> int:
    per_block = BLOCK * -(-registers // 8) * 8
    blocks = min(H200["registers_per_sm"] // per_block, H200["threads_per_sm"] // BLOCK)
    return blocks * BLOCK * H200["sms"]


def littles_law_steps(dtype, direction, flags, registers, K=16) -> float:
    """Steps (time steps) ahead; a thread of L lanes moves L neurons' bytes a step."""
    storage, acc = DTYPE_BYTES[dtype]
    lanes = flags.get("lanes", 1)
    if direction == "forward":
        step_bytes = 2 * storage + (3 * acc / K if flags.get("save") else 0)
    else:
        step_bytes = 3 * storage + 3 * acc / K
    resident = min(resident_threads(registers), H200["threads"] // lanes)
    return H200["bandwidth"] * H200["latency"] / (resident * lanes * step_bytes)


def h200_waves(registers, lanes=1) -> float:
    """Waves of a launch of the H200 model size (H200["threads"] neurons, `lanes` a thread)."""
    return H200["threads"] / lanes / resident_threads(registers)


def target(name, select, metric, limit):
    """A row of TARGETS: (name, dtypes, direction, flag filter, metric, limit). `select` names
    the dtypes, then the direction (none: both), then the flags the instances must have:
    `flag` (true), `!flag` (false), `flag=N`; no flags: every variant."""
    words = select.split()
    dtypes = tuple(w for w in words if w in DTYPES)
    direction = next((w for w in words if w in ("forward", "backward")), None)
    flags = {}
    for w in words[len(dtypes) + (direction is not None) :]:
        flag, _, value = w.lstrip("!").partition("=")
        flags[flag] = int(value) if value else not w.startswith("!")
    return name, dtypes, direction, flags, metric, limit


IPS = "instructions_per_step.total"
# The targets (issue 17), checked by --check.
TARGETS = [
    target("forward <= 60 instructions/step", "f32 bf16 forward", IPS, 60),
    # Issue 40: the two-lane forward (the one that runs where H is even) of 16-bit storage within
    # 35, and f32's default training forward (per-layer constants) in one wave at the H200 size.
    target("bf16 forward, two lanes, <= 35 instructions/step", "bf16 forward lanes=2", IPS, 35),
    target(
        "f32 forward training, two lanes, in one wave at the H200 size",
        "f32 forward lanes=2 save !per_neuron",
        "h200_waves",
        1,
    ),
    # Issue 40: the two-lane detached backward (16-bit storage, per-layer constants) within 46.
    target(
        "bf16 backward, detached states, two lanes, <= 46 instructions/step",
        "bf16 backward detach_recurrent lanes=2",
        IPS,
        46,
    ),
    target("backward, detached states <= 90 instructions/step", "f32 bf16 backward detach_recurrent", IPS, 90),
    target("backward, exact BPTT <= 110 instructions/step", "f32 bf16 backward !detach_recurrent", IPS, 110),
    target("no double-precision conversion in a time loop", "f32 bf16", "double_conversions_in_loop", 0),
    # The default instances (per-layer constants, no gradient of them): the per-neuron ones
    # keep the constants in registers and exact BPTT's with the constants' gradients also each
    # step's StepInputs (issue 13); those take up to 255 registers, without spills. The
    # detached backward adds each step's share in its recompute: every instance within 128.
    target(
        "detached backward <= 128 registers, every instance", "f32 bf16 f16 backward detach_recurrent", "registers", 128
    ),
    target("backward <= 128 registers", "f32 bf16 f16 backward !per_neuron !constant_grads", "registers", 128),
    target("backward without spills", "f32 bf16 f16 backward", "spills_bytes", 0),
    # Loads ahead of use (benchmarks/GPU_NOTES.md, "Loads ahead: the thresholds"): the median
    # lead at least the Little's-law lead of the instance (`loads.littles_law_steps`, from its
    # registers and bytes per step), and no load less than one whole step ahead.
    # A load covered by a prefetch of its stream (prefetch.global.L2, CCTL) counts with the
    # prefetch's lead for the DRAM part (`dram_steps_ahead`), and its own register lead must
    # cover an L2 hit: median >= the Little's-law lead scaled by L2_LATENCY / latency, fewest
    # >= one step so scaled. Instances without prefetches have no L2 rows (None: not applicable).
    target(
        "loads ahead of use, DRAM (median) >= Little's law", "f32 bf16", "loads.median_over_littles_law", AtLeast(1)
    ),
    target("every load's DRAM lead >= 1 step", "f32 bf16", "loads.min_dram_steps_ahead", AtLeast(1)),
    target(
        "prefetched loads ahead of use, L2 (median) >= Little's law",
        "f32 bf16",
        "loads.l2_median_over_littles_law",
        AtLeastIfAny(1),
    ),
    target("every prefetched load >= 1 step ahead, L2", "f32 bf16", "loads.l2_min_over_one_step", AtLeastIfAny(1)),
    target("backward: no load issued after a store", "f32 bf16 backward", "loads.fraction_after_store", 0),
]


class ToolsMissing(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# Tools


def _real_nvcc(path: str) -> str:
    """Follow a wrapper script (`exec /real/nvcc "$@"`) to the binary it runs."""
    path = os.path.realpath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return path
    if head.startswith(b"#!"):
        m = re.search(rb"exec\s+(\S*nvcc)\b", head)
        if m and os.path.isfile(m.group(1).decode()):
            return os.path.realpath(m.group(1).decode())
    return path


def find_tools() -> dict:
    nvcc = None
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and os.path.isfile(os.path.join(home, "bin", "nvcc")):
        nvcc = os.path.join(home, "bin", "nvcc")
    elif shutil.which("nvcc"):
        nvcc = _real_nvcc(shutil.which("nvcc"))
    if nvcc is None:
        raise ToolsMissing("no nvcc (set CUDA_HOME or put nvcc on PATH)")
    bindir = os.path.dirname(nvcc)
    candidates = [os.path.join(bindir, "cuobjdump"), shutil.which("cuobjdump")]
    spec = importlib.util.find_spec("triton")
    if spec is not None and spec.origin:
        candidates.append(os.path.join(os.path.dirname(spec.origin), "backends", "nvidia", "bin", "cuobjdump"))
    cuobjdump = next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)
    if cuobjdump is None:
        raise ToolsMissing(f"no cuobjdump (looked in {bindir}, on PATH and in triton's wheel)")
    filt = shutil.which("cu++filt", path=bindir) or shutil.which("cu++filt") or shutil.which("c++filt")
    return {"nvcc": nvcc, "cuobjdump": cuobjdump, "filt": filt}


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def tool_version(exe: str) -> str:
    out = _run([exe, "--version"]).stdout.strip().splitlines()
    rel = [line for line in out if "release" in line]
    return (rel[-1] if rel else (out[-1] if out else "?")).strip()


def _source_constant(path, pattern):
    """The integer `pattern` captures in the source file csrc/recurrence/`path`; None if absent."""
    try:
        with open(os.path.join(ROOT, "csrc", "recurrence", path)) as f:
            m = re.search(pattern, f.read())
    except OSError:
        return None
    return int(m.group(1)) if m else None


def checkpoint_interval() -> int:
    k = _source_constant("src_recurrence_params.h", r"kCheckpointInterval\s*=\s*(\d+)")
    return 16 if k is None else k


def exact_split_share() -> float:
    """The share of a chunk that the float-math exact backward runs twice (kExactSplit in
    csrc/recurrence/cuda/src_recurrence_kernels.cuh, kChunk / d: its first part is run once for the state, then
    recomputed with its Jacobians); 0 if the source has no split."""
    pattern = r"kExactSplit\s*=\s*sizeof\(Acc\)\s*==\s*8\s*\?\s*0\s*:\s*kChunk\s*/\s*(\d+)"
    d = _source_constant(os.path.join("cuda", "src_recurrence_kernels.cuh"), pattern)
    return 0.0 if d is None else 1 / d


# setup.py's nvcc flags, and those of torch's CUDAExtension that matter for code generation
NVCC_FLAGS = (
    f"-cubin -arch={ARCH} -O3 --expt-relaxed-constexpr -lineinfo -std=c++20 -D__CUDA_NO_HALF_OPERATORS__"
    " -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__"
    " -DTORCH_API_INCLUDE_EXTENSION_H -DTORCH_EXTENSION_NAME=_C"
).split()


def compile_dtype(tools: dict, dtype: str, workdir: str) -> dict:
    from torch.utils import cpp_extension  # here, not at the top: torch is slow to import

    src = os.path.join(ROOT, "csrc", "recurrence", "cuda", f"src_recurrence_cuda_{dtype}.cu")
    cubin = os.path.join(workdir, f"src_cuda_{dtype}.cubin")
    includes = [f"-I{p}" for p in [*cpp_extension.include_paths(), os.path.join(ROOT, "csrc")]]
    p = _run([tools["nvcc"], *NVCC_FLAGS, *includes, "-Xptxas", "-v", "-o", cubin, src])
    if p.returncode != 0:
        raise RuntimeError(f"nvcc failed on {src}:\n{p.stderr[-4000:]}")
    sass, res, elf = (_run([tools["cuobjdump"], option, cubin]) for option in ("-sass", "-res-usage", "-elf"))
    if sass.returncode != 0:
        raise RuntimeError(f"cuobjdump -sass failed on {cubin}:\n{sass.stderr}")
    return {"ptxas": p.stderr, "sass": sass.stdout, "res_usage": res.stdout, "elf": elf.stdout}


# ---------------------------------------------------------------------------------------------
# Parsing

INSTR_RE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")
TARGET_RE = re.compile(r"(0x[0-9a-f]+)")
REG_RE = re.compile(r"(?<![A-Za-z0-9_])R(\d+)(\.64|\.128)?")
LOADS = ("LDG", "LD", "LDL", "LDS", "LDC")
# instructions without a destination register (their register operands are all sources)
NO_DEST = set("ST STG STL STS RED BRA EXIT CALL RET BSSY BSYNC CCTL BAR WARPSYNC NOP DEPBAR".split())
# the base opcodes of each kind but `other` (see the module's docstring); any other instruction
# with an F64 operand is `double` too
KIND_OF_OPCODE = {
    op: kind
    for kind, ops in {
        "memory": "LDG STG LD ST LDL STL LDS STS ATOM ATOMG RED LDGSTS LDSM ATOMS CCTL LDGDEPBAR DEPBAR",
        "mufu": "MUFU",
        "double": "DADD DFMA DMUL DSETP DMNMX DMMA",
        "conversion": "F2F F2I I2F F2FP I2I FRND F2IP I2FP",
        "float_arith": "FFMA FADD FMUL FMNMX FSEL FSETP FCHK FSWZADD HFMA2 HADD2 HMUL2 HMNMX2 HSETP2 FSET HSET2",
        "control": "BRA BRX JMP JMX BSSY BSYNC CALL RET EXIT WARPSYNC BREAK BMOV YIELD KILL BPT NANOSLEEP",
    }.items()
    for op in ops.split()
}


@dataclass
class Instr:
    addr: int
    pred: str
    op: str
    args: str

    @property
    def base(self) -> str:
        return self.op.split(".")[0]

    def regs(self):
        """(destination registers, source registers) as sets of register numbers."""

        def expand(text, width=None):
            out = set()
            for m in REG_RE.finditer(text):
                r = int(m.group(1))
                out.update(range(r, r + (width or {"": 1, ".64": 2, ".128": 4}[m.group(2) or ""])))
            return out

        if self.base in NO_DEST or not self.args:
            dest, srcs = set(), expand(self.args)
        else:
            first, _, rest = self.args.partition(",")
            wide = self.base.startswith("D") or self.op.startswith(("F2F.F64", "I2F.F64"))
            width = 1
            if self.base in LOADS or wide:
                width = 4 if ".128" in self.op else 2 if (".64" in self.op or wide) else 1
            dest, srcs = expand(first, width), expand(rest)
        if self.base.startswith("D") or ".F64" in self.op:  # double operands are register pairs
            srcs |= {r + 1 for r in srcs}
        return dest - {255}, srcs - {255}  # RZ


def kind_of(ins: Instr) -> str:
    kind = KIND_OF_OPCODE.get(ins.base, "other")
    return "double" if kind not in ("memory", "mufu") and ".F64" in ins.op else kind


def is_double_conversion(ins: Instr) -> bool:
    return ins.base in ("F2F", "F2I", "I2F") and ".F64" in ins.op


def is_prefetch(ins: Instr) -> bool:
    return ins.base == "CCTL" and ".PF" in ins.op  # prefetch.global.L2: CCTL.E.PF2


def branch_target(ins: Instr):
    m = TARGET_RE.search(ins.args) if ins.base in ("BRA", "CALL") else None
    return int(m.group(1), 16) if m else None


def _sections(text: str, header: str) -> dict:
    """{name: its lines} of a listing whose sections open with a line matching `header` (group
    1: the function's name); a name met twice gathers both sections, lines before any header
    are dropped."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.search(header, line)
        if m:
            cur = out.setdefault(m.group(1), [])
        elif cur is not None:
            cur.append(line)
    return out


def parse_sass(text: str) -> dict:
    funcs = {}
    for name, lines in _sections(text, r"Function\s*:\s*(\S+)").items():
        ms = filter(None, map(INSTR_RE.search, lines))
        funcs[name] = [
            Instr(int(m.group(1), 16), (m.group(2) or "").strip(), m.group(3), m.group(4).strip()) for m in ms
        ]
    return funcs


def parse_ptxas(text: str) -> dict:
    out = {}
    for name, lines in _sections(text, r"(?:Function properties for |Compiling entry function ')([^\s']+)").items():
        out[name] = props = {}
        for line in lines:
            m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
            if m:
                props.update(zip(("stack_bytes", "spill_store_bytes", "spill_load_bytes"), map(int, m.groups())))
            m = re.search(r"Used (\d+) registers", line)
            if m:
                props["registers"] = int(m.group(1))
    return out


def parse_res_usage(text: str) -> dict:
    out = {}
    for name, lines in _sections(text, r"Function (\S+):").items():
        for m in filter(None, (re.search(r"REG:(\d+) STACK:(\d+) SHARED:\d+ LOCAL:(\d+)", s) for s in lines)):
            out[name] = dict(zip(("registers", "stack_bytes", "local_bytes"), map(int, m.groups())))
    return out


PARAM_BASE = 0x210  # sm_90: kernel parameters start at c[0x0][0x210]


def parse_pointer_params(elf_text: str) -> dict:
    """{mangled kernel: constant-bank offsets of its 8-byte parameters (the stream pointers)}
    from the EIATTR_KPARAM_INFO entries of `cuobjdump -elf`."""
    param = re.compile(r"Ordinal\s*:\s*0x[0-9a-f]+\s+Offset\s*:\s*(0x[0-9a-f]+)\s+Size\s*:\s*(0x[0-9a-f]+)")
    return {
        name: {PARAM_BASE + int(m.group(1), 16) for m in map(param.search, lines) if m and int(m.group(2), 16) == 8}
        for name, lines in _sections(elf_text, r"^\s*\.nv\.info\.(\S+)\s*$").items()
    }


def demangle(names, filt):
    lines = _run([filt], input="\n".join(names) + "\n").stdout.splitlines() if filt and names else []
    return dict(zip(names, lines)) if len(lines) == len(names) else {n: n for n in names}


def instance_of(demangled: str):
    """(direction, flags) from `srcext::cuda::src_exact_backward_kernel<float, float, true, ..>(..)`."""
    m = re.search(r"src_(forward|exact_backward|detached_backward)_kernel<(.*)>\s*\(", demangled)
    if not m:
        return None
    kernel, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
    bools = [a == "true" for a in args if a in ("true", "false")]
    if kernel == "forward":  # <scalar_t, Acc, kSave, kLengths, kPerNeuron, kLanes>
        flags = dict(zip(("save", "lengths", "per_neuron"), bools))
    else:  # <scalar_t, Acc, kStraightThrough, kLengths, kPerNeuron, kConstGrad[, kLanes]>
        flags = {"detach_recurrent": kernel == "detached_backward"}
        flags.update(zip(("straight_through", "lengths", "per_neuron", "constant_grads"), bools))
    flags.setdefault("lengths", False)
    if kernel != "exact_backward":  # neurons per thread (src_lanes.cuh)
        flags["lanes"] = int(args[-1]) if args[-1].isdigit() else 1
    return ("forward" if kernel == "forward" else "backward"), flags


# The storage types whose forward runs two lanes where it can (forward_lanes), and those whose
# detached backward does (backward_lanes, per-layer constants): their one-lane instances, the
# fallback, are named "+1lane"; the others have only those.
PAIRED_DTYPES = {"forward": ("f32", "bf16", "f16"), "backward": ("bf16", "f16")}


def variant_name(direction, flags, dtype=None) -> str:
    if direction == "forward":
        name = "training" if flags["save"] else "inference"
    else:
        name = ("detach" if flags["detach_recurrent"] else "exact") + ("+st" if flags["straight_through"] else "")
    name += "".join(f"+{f}" for f in ("lengths", "per_neuron", "constant_grads") if flags.get(f))
    one_lane = flags.get("lanes", 2) == 1 and dtype in PAIRED_DTYPES[direction]
    return name + ("+1lane" if one_lane and (direction == "forward" or not flags.get("per_neuron")) else "")


# ---------------------------------------------------------------------------------------------
# Control flow and the steady-state path


@dataclass
class Block:
    start: int  # index into the instruction list
    end: int  # exclusive
    succ: list = field(default_factory=list)  # (block index, kind) kind: 'taken' | 'fall'


def basic_blocks(instrs):
    addr_idx = {ins.addr: i for i, ins in enumerate(instrs)}
    leaders = {0}
    for i, ins in enumerate(instrs):
        if ins.base == "BRA" and (t := branch_target(ins)) in addr_idx:
            leaders.add(addr_idx[t])
        if ins.base in ("BRA", "EXIT", "RET", "BRX", "JMP") and i + 1 < len(instrs):
            leaders.add(i + 1)
    starts = sorted(leaders)
    blocks = [Block(s, e) for s, e in zip(starts, starts[1:] + [len(instrs)])]
    start_block = {b.start: k for k, b in enumerate(blocks)}
    for k, b in enumerate(blocks):
        last = instrs[b.end - 1]
        conditional = bool(last.pred) and last.pred not in ("@PT", "@UPT")
        if last.base == "BRA":
            t = branch_target(last)
            if t in addr_idx:
                b.succ.append((start_block[addr_idx[t]], "taken"))
            if conditional and k + 1 < len(blocks):
                b.succ.append((k + 1, "fall"))
        elif (conditional or last.base not in ("EXIT", "RET")) and k + 1 < len(blocks):
            b.succ.append((k + 1, "fall"))
    return blocks


def _pred_setter(instrs, i, lo, pred):
    """The instruction in [lo, i) that last sets predicate `pred` (e.g. 'P0')."""
    return next((instrs[j] for j in range(i - 1, lo - 1, -1) if instrs[j].args.split(",")[0].strip() == pred), None)


def _is_periodic_test(ins, K) -> bool:
    if ins is None or ins.base not in ("LOP3", "ULOP3"):
        return False
    imms = re.findall(r"0x[0-9a-f]+|\b\d+\b", ins.args.split(",", 2)[-1])
    return any(int(x, 0) == K - 1 for x in imms[:2])


def _store_only(instrs, lo, hi) -> bool:
    kinds = {kind_of(ins) for ins in instrs[lo:hi]}
    no_loads = not any(ins.base in ("LDG", "LD", "LDL") for ins in instrs[lo:hi])
    return "memory" in kinds and no_loads and not kinds & {"mufu", "float_arith", "double"}


def steady_state_path(instrs, blocks, head, tail, K, iterations_per_period=None):
    """The instructions of the blocks in [head, tail] (block indices) as (index, per-iteration
    execution frequency) in address order, leaving out those that never run; the periodic
    blocks; whether the loop holds a nested one. A periodic block runs once every
    `iterations_per_period` iterations (K / the steps of an iteration; K where that is not
    known yet)."""
    period = iterations_per_period or K
    freq = {k: 0.0 for k in range(head, tail + 1)}
    freq[head] = 1.0
    periodic, nested = [], False
    for k in range(head, tail + 1):
        b, f = blocks[k], freq[k]
        succ = [(s, kind) for s, kind in b.succ if head <= s <= tail]
        if any(s <= k for s, _ in succ):
            nested = nested or k != tail
            succ = [(s, kind) for s, kind in succ if s > k]
        if not succ or f == 0.0:
            continue
        if len(succ) == 1:
            freq[succ[0][0]] += f
            continue
        (taken, _), (fall, _) = succ  # basic_blocks lists the taken edge first
        cold = [s for s in (taken, fall) if any(ins.base == "CALL" for ins in instrs[blocks[s].start : blocks[s].end])]
        if len(cold) == 1:
            freq[fall if cold[0] == taken else taken] += f
            continue
        setter = _pred_setter(instrs, b.end - 1, blocks[head].start, instrs[b.end - 1].pred.lstrip("@").lstrip("!"))
        skipped_lo, skipped_hi = blocks[fall].start, blocks[taken].start
        by = "counter mask" if _is_periodic_test(setter, K) else None
        if taken > fall and (by or _store_only(instrs, skipped_lo, skipped_hi)):
            freq[fall] += f / period
            freq[taken] += f * (1 - 1 / period)
            skipped = {"from": f"0x{instrs[skipped_lo].addr:x}", "to": f"0x{instrs[skipped_hi - 1].addr:x}"}
            periodic.append({**skipped, "instructions": skipped_hi - skipped_lo, "by": by or "store-only"})
        else:
            freq[fall] += f
    weighted = [
        (i, freq[k]) for k in range(head, tail + 1) if freq[k] > 0 for i in range(blocks[k].start, blocks[k].end)
    ]
    return weighted, periodic, nested


def output_stores(instrs, weighted, lo, hi, pointer_params) -> int:
    """The stores of one iteration's per-step output (spikes, grad_u): its unpredicated stores
    run every iteration -- a predicated store is conditional (e.g. checkpoint stores the
    compiler if-converted) -- and, where the pointer parameters are known, of the stream stored
    to most (checkpoints stored every iteration, S = K, unguarded, are not steps)."""
    full = [i for i, w in weighted if instrs[i].base == "STG" and w >= 0.999 and not instrs[i].pred]
    if not pointer_params or not full:
        return len(full)
    stream = address_streams(instrs, lo, hi, pointer_params, kinds=("STG",))
    per_stream = collections.Counter(stream[i] for i in full if stream.get(i) is not None)
    return max(per_stream.values()) if per_stream else len(full)


def analyse_loop(instrs, blocks, head, tail, K, pointer_params):
    weighted, periodic, nested = steady_state_path(instrs, blocks, head, tail, K)
    lo, hi = blocks[head].start, blocks[tail].end - 1
    stores_full = output_stores(instrs, weighted, lo, hi, pointer_params)
    if periodic and stores_full > 1:  # an iteration of S steps meets the period every K / S
        weighted, periodic, nested = steady_state_path(instrs, blocks, head, tail, K, K / stores_full)
    transc = sum(w for i, w in weighted if instrs[i].op.startswith(("MUFU.EX2", "MUFU.TANH")))
    steps, method = stores_full, "output stores"
    if steps == 0:  # every store predicated: fall back on the exponentials, then on all stores
        steps, method = round(transc / TRANSCENDENTALS_PER_STEP), "transcendentals"
        if steps == 0:
            steps = sum(1 for i, w in weighted if instrs[i].base == "STG" and w >= 0.999)
            method = "all stores"
    return dict(
        weighted=weighted,
        steps=steps,
        steps_by_stores=stores_full,
        step_method=method,
        transcendentals=transc,
        periodic=periodic,
        nested=nested,
    )


def time_loops(instrs, blocks, K, pointer_params):
    """The time loops (see the module's docstring), each analysed (analyse_loop) with its head
    and tail addresses."""
    addr_idx = {ins.addr: i for i, ins in enumerate(instrs)}
    block_of = {i: k for k, b in enumerate(blocks) for i in range(b.start, b.end)}
    loops = []
    for i, ins in enumerate(instrs):
        t = branch_target(ins)
        if ins.base != "BRA" or t is None or t > ins.addr or t not in addr_idx:
            continue
        lo = addr_idx[t]
        if any(x.base == "STG" for x in instrs[lo : i + 1]):
            loop = analyse_loop(instrs, blocks, block_of[lo], block_of[i], K, pointer_params)
            loops.append({**loop, "head": t, "tail": ins.addr})
    return loops


UREG_RE = re.compile(r"(?<![A-Za-z0-9_])UR(\d+)")
CONST_RE = re.compile(r"c\[0x0\]\[(0x[0-9a-f]+)\]")


def _address(ins: Instr) -> str:
    """The address operand of a load or prefetch: the last [...] (not the desc[URn])."""
    brackets = re.findall(r"\[([^\[\]]*)\]", ins.args)
    return brackets[-1] if brackets else ""


def _reg_keys(text: str, wide: bool):
    keys = set()
    for m in REG_RE.finditer(text):
        r = int(m.group(1))
        if r == 255:
            continue
        w = 2 if (wide or m.group(2) == ".64") else 4 if m.group(2) == ".128" else 1
        keys.update(("R", r + k) for k in range(w))
    for m in UREG_RE.finditer(text):
        if int(m.group(1)) != 63:  # URZ
            keys.update(("U", int(m.group(1)) + k) for k in range(2 if wide else 1))
    return keys


def address_streams(instrs, lo, hi, pointer_params, kinds=("LDG", "CCTL")):
    """{instruction index: stream} for the global loads and prefetches (`kinds`) in instrs[lo..hi] (a
    loop): the stream is the one pointer parameter (constant-bank offset) that the address is
    computed from, None if none or several. Origins (the pointer parameters a register's value
    derives from) are propagated in address order through every instruction from the kernel's
    start, then once more around the loop from the union of the states at its head and tail
    (loop-carried pointers). A loaded value has no origin (a pointer reloaded from a spill
    loses it: its load counts as uncovered, the conservative side)."""
    state = {}  # register key: the pointer parameters its value derives from

    def origins(text, wide):
        return set().union(*(state.get(key, ()) for key in _reg_keys(text, wide)))

    def step(i, record=None):
        ins = instrs[i]
        if ins.base in kinds and record is not None:
            origin = origins(_address(ins), wide=True)
            record[i] = next(iter(origin)) if len(origin) == 1 else None
        if ins.base in NO_DEST or not ins.args:
            return
        dest, _, srcs = ins.args.partition(",")
        wide = ".WIDE" in ins.op or ".64" in ins.op
        origin = set()
        if ins.base not in LOADS or CONST_RE.search(ins.args):
            origin = origins(srcs, wide=False)
            for m in CONST_RE.finditer(ins.args):
                origin.update(p for p in pointer_params if p <= int(m.group(1), 16) < p + 8)
        for key in _reg_keys(dest, wide):
            state[key] = (state.get(key, set()) | origin) if ins.pred else set(origin)

    for i in range(lo):
        step(i)
    at_head = {k: set(v) for k, v in state.items()}
    for i in range(lo, hi + 1):
        step(i)
    for k, v in at_head.items():
        state[k] = state.get(k, set()) | v
    record = {}
    for i in range(lo, hi + 1):
        step(i, record)
    return record


def prefetch_cover(instrs, path, streams):
    """{load position in the path: instructions from the covering prefetch} for the loads of a
    stream that the loop also prefetches, at least as many times an iteration as it loads it.
    The kernel's contract (src_recurrence_kernels.cuh, GPU_NOTES.md): the prefetches of an iteration are
    of the addresses the next iteration loads. The lead counted is from the stream's last
    prefetch of the iteration before (the latest any covering prefetch can be), a lower bound."""
    loads, pfs = {}, {}
    for pos, i in enumerate(path):
        if streams.get(i) is not None and (instrs[i].base == "LDG" or is_prefetch(instrs[i])):
            (loads if instrs[i].base == "LDG" else pfs).setdefault(streams[i], []).append(pos)
    cover = {}
    for st, positions in loads.items():
        if len(pfs.get(st, [])) >= len(positions):
            cover.update({pos: len(path) - max(pfs[st]) + pos for pos in positions})
    return cover


def load_distances(instrs, weighted, per_step, streams):
    """Distance from each global load to the first consumer of its value, along the path."""
    path = [i for i, _ in weighted]
    n = len(path)
    regs = {i: instrs[i].regs() for i in path}
    cover = prefetch_cover(instrs, path, streams)
    out, seen_store = [], False
    for pos, i in enumerate(path):
        ins = instrs[i]
        seen_store = seen_store or ins.base == "STG"
        if ins.base != "LDG":
            continue
        live = set(regs[i][0])
        dist = None
        for d in range(1, MAX_ITERATIONS_AHEAD * n):  # a prefetch may be iterations ahead
            j = path[(pos + d) % n]
            dst, src = regs[j]
            if live & src:  # any reader waits on the load's scoreboard, a register copy too
                dist = d
                break
            if not instrs[j].pred:
                live -= dst
            if not live:
                break
        steps = None if dist is None else round(dist / per_step, 2)
        pf, st = cover.get(pos), streams.get(i)
        out.append(
            {
                "addr": f"0x{ins.addr:x}",
                "op": ins.op,
                "instructions_to_use": dist,
                "steps_ahead": steps,
                "after_store": seen_store,
                "stream": None if st is None else f"c[0x0][0x{st:x}]",
                "prefetch_instructions_ahead": pf,
                # the DRAM part is in flight from the prefetch on, when there is one
                "dram_steps_ahead": round(pf / per_step, 2) if pf is not None else steps,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Report


def _median(xs):
    return sorted(xs)[len(xs) // 2] if xs else None


def _share(n, xs, digits=3):
    """n / len(xs), rounded (a mean over xs, or a fraction of them); None for no xs."""
    return round(n / len(xs), digits) if xs else None


def _ratio(x, d):
    return None if x is None else round(x / d, 2)


def cell_steps_per_step(dtype, direction, flags, split_share) -> float:
    """Cell steps computed per time step: 1, or 1 + split_share (exact_split_share()) in the
    float exact backward."""
    if direction == "backward" and not flags.get("detach_recurrent") and dtype != "f64":
        return 1 + split_share
    return 1.0


def analyse_function(instrs, K, pointer_params=(), cell_steps=1.0, lanes=1):
    loops = time_loops(instrs, basic_blocks(instrs), K, pointer_params)
    if not loops:
        return {"error": "no time loop found"}

    def rank(lp):  # the time loop does the cell math (exponentials on the MUFU); a loop that
        # only stores (e.g. the zero spikes past a sample's length) is not it, however unrolled
        return any(kind_of(instrs[i]) == "mufu" for i, _ in lp["weighted"]), lp["steps"], lp["tail"] - lp["head"]

    main = max(loops, key=rank)
    weighted = main["weighted"]

    def weight(test):  # of the instructions of the iteration that pass `test`
        return sum(w for i, w in weighted if test(instrs[i]))

    # steps: time steps of the iteration (one output store each, as the loads' leads count
    # them); per step below means per neuron-step, of which a time step holds `lanes`.
    addr_idx = {ins.addr: i for i, ins in enumerate(instrs)}
    steps = max(main["steps"], 1)
    neuron_steps = steps * lanes
    counts = {k: weight(lambda ins, k=k: kind_of(ins) == k) for k in KINDS}
    total = sum(counts.values())
    dconv = weight(is_double_conversion)
    streams = address_streams(instrs, addr_idx[main["head"]], addr_idx[main["tail"]], pointer_params)
    loads = load_distances(instrs, weighted, total / steps, streams)
    covered = [ld for ld in loads if ld["prefetch_instructions_ahead"] is not None]

    def known(lds, key):
        return [ld[key] for ld in lds if ld[key] is not None]

    ahead, dram, l2 = known(loads, "steps_ahead"), known(loads, "dram_steps_ahead"), known(covered, "steps_ahead")
    transcendentals = main["transcendentals"] / (TRANSCENDENTALS_PER_STEP * cell_steps * lanes)
    return {
        "steps_per_iteration": main["steps"],
        "lanes": lanes,
        "step_detection": {
            "method": main["step_method"],
            "by_output_stores": main["steps_by_stores"],
            "by_transcendentals": round(transcendentals, 2) if main["transcendentals"] else None,
        },
        "instructions_per_step": {k: round(v / neuron_steps, 2) for k, v in {"total": total, **counts}.items()},
        "instructions_per_iteration": round(total, 2),
        "double_conversions_in_loop": round(dconv / neuron_steps, 3),
        "double_conversions_in_loop_per_iteration": round(dconv, 3),
        "cell_steps_per_step": round(cell_steps, 3),
        "mufu_ex2_tanh_per_step": round(main["transcendentals"] / neuron_steps, 2),
        # accesses per time step (one vector access serves all lanes)
        "global_loads_per_step": round(weight(lambda ins: ins.base == "LDG") / steps, 3),
        "global_stores_per_step": round(weight(lambda ins: ins.base == "STG") / steps, 3),
        "loop": {
            "head": f"0x{main['head']:x}",
            "tail": f"0x{main['tail']:x}",
            "static_instructions": (main["tail"] - main["head"]) // 16 + 1,
            "periodic_blocks": main["periodic"],
            "nested_loops": main["nested"],
            "time_loops_found": len(loops),
        },
        "loads": {
            "min_steps_ahead": min(ahead, default=None),
            "mean_steps_ahead": _share(sum(ahead), ahead, 2),
            "median_steps_ahead": _median(ahead),
            "fraction_after_store": _share(sum(ld["after_store"] for ld in loads), loads),
            # with prefetches: the DRAM lead of each load (the prefetch's, where one covers it)
            # and the register lead of the covered loads (which wait for an L2 hit only)
            "prefetches_per_step": round(weight(is_prefetch) / steps, 3),
            "fraction_covered_by_prefetch": _share(len(covered), loads),
            "min_dram_steps_ahead": min(dram, default=None),
            "median_dram_steps_ahead": _median(dram),
            "l2_min_steps_ahead": min(l2, default=None),
            "l2_median_steps_ahead": _median(l2),
            "per_load": loads,
        },
    }


def git_commit():
    commit = _run(["git", "-C", ROOT, "rev-parse", "HEAD"]).stdout.strip() or None
    dirty = _run(["git", "-C", ROOT, "status", "--porcelain", "--", "csrc"]).stdout.strip()
    return commit, bool(dirty)


def kernel_entries(tools, dtype, compiled, K, split_share):
    """{dtype/direction/variant: report entry} of the kernels of one dtype's compilation."""
    funcs, ptxas = parse_sass(compiled["sass"]), parse_ptxas(compiled["ptxas"])
    res, pointers = parse_res_usage(compiled["res_usage"]), parse_pointer_params(compiled["elf"])
    names = demangle(sorted(funcs), tools["filt"])
    kernels = {}
    for mangled in sorted(funcs):
        inst = instance_of(names[mangled])
        if inst is None:
            continue
        direction, flags = inst
        lanes = flags.get("lanes", 1)
        px, ru = ptxas.get(mangled, {}), res.get(mangled, {})
        registers = px.get("registers", ru.get("registers"))
        entry = {
            "dtype": dtype,
            "direction": direction,
            "variant": variant_name(direction, flags, dtype),
            "flags": flags,
            "name": names[mangled],
            "registers": registers,
            "spills_bytes": px.get("spill_store_bytes", 0) + px.get("spill_load_bytes", 0),
            "stack_bytes": px.get("stack_bytes", ru.get("stack_bytes")),
            "local_bytes": ru.get("local_bytes"),
            "registers_res_usage": ru.get("registers"),
        }
        cell_steps = cell_steps_per_step(dtype, direction, flags, split_share)
        entry.update(analyse_function(funcs[mangled], K, pointers.get(mangled, ()), cell_steps, lanes))
        if direction == "forward" and registers:
            entry["h200_waves"] = round(h200_waves(registers, lanes), 2)
        loads = entry.get("loads")
        if loads and registers:
            need = littles_law_steps(dtype, direction, flags, registers, K)
            l2_share = L2_LATENCY / H200["latency"]
            loads["littles_law_steps"] = round(need, 2)
            loads["l2_littles_law_steps"] = round(need * l2_share, 2)
            loads["median_over_littles_law"] = _ratio(loads["median_dram_steps_ahead"], need)
            loads["l2_median_over_littles_law"] = _ratio(loads["l2_median_steps_ahead"], need * l2_share)
            loads["l2_min_over_one_step"] = _ratio(loads["l2_min_steps_ahead"], l2_share)
        kernels[f"{dtype}/{direction}/{entry['variant']}"] = entry
    return kernels


def build_report(tools, dtypes, workdir) -> dict:
    K, split_share = checkpoint_interval(), exact_split_share()
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(2, len(dtypes))) as pool:
        compiled = dict(zip(dtypes, pool.map(lambda d: compile_dtype(tools, d, workdir), dtypes)))
    kernels = {}
    for dtype in dtypes:
        kernels.update(kernel_entries(tools, dtype, compiled[dtype], K, split_share))
    commit, dirty = git_commit()
    return {
        "arch": ARCH,
        "nvcc": tool_version(tools["nvcc"]),
        "cuobjdump": tool_version(tools["cuobjdump"]),
        "git_commit": commit,
        "csrc_modified": dirty,
        "checkpoint_interval": K,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "kernels": kernels,
    }


def _metric(entry, metric):
    v = entry
    for part in metric.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return v


def check(report) -> list:
    misses = []
    for name, dtypes, direction, flt, metric, limit in TARGETS:
        for key, e in report["kernels"].items():
            # A flag a kernel's template does not have is false for it.
            flags_match = all(e["flags"].get(k, False) == v for k, v in flt.items())
            if e["dtype"] not in dtypes or direction not in (None, e["direction"]) or not flags_match:
                continue
            value = _metric(e, metric)
            if isinstance(limit, AtLeastIfAny) and value is None:
                continue
            if isinstance(limit, AtLeast):
                if value is None or value < limit:
                    misses.append(f"{key}: {metric} = {value} < {float(limit):g}  ({name})")
            elif value is None or value > limit:
                misses.append(f"{key}: {metric} = {value} > {limit}  ({name})")
    return misses


# The table's columns after the kernel's name: (title, format of the value)
COLUMNS = [("regs", ">4"), ("spill", ">5"), ("stack", ">5"), ("steps", ">5"), ("total", ">6.1f")]
COLUMNS += [(title, ">5.1f") for title in ("mem", "mufu", "float", "conv", "dbl", "ctrl", "other")]  # KINDS
COLUMNS += [("f64cv", ">5.2f"), ("ldMed", ">5"), ("ldMin", ">5"), ("ld>st", ">5")]


def table(report) -> str:
    head = f"{'kernel':<28} " + " ".join(f"{title:{fmt.split('.')[0]}}" for title, fmt in COLUMNS)
    lines = [
        f"SASS {report['arch']}, {report['nvcc']}, commit {str(report['git_commit'])[:10]}"
        f"{' (csrc modified)' if report['csrc_modified'] else ''}; instructions per neuron-step"
        " of the steady-state loop",
        head,
        "-" * len(head),
    ]
    for key, e in report["kernels"].items():
        ips = e.get("instructions_per_step")
        if not ips:
            lines.append(f"{key:<28} {e['registers']:>4} {e.get('error')}")
            continue
        values = [e[k] for k in ("registers", "spills_bytes", "stack_bytes", "steps_per_iteration")]
        values += [ips[k] for k in ("total", *KINDS)] + [e["double_conversions_in_loop"]]
        values += [str(e["loads"][k]) for k in ("median_steps_ahead", "min_steps_ahead", "fraction_after_store")]
        lines.append(f"{key:<28} " + " ".join(f"{v:{fmt}}" for v, (_, fmt) in zip(values, COLUMNS)))
    lines.append(
        "f64cv: double<->float conversions per step in the loop; ldMed / ldMin: median "
        "/ fewest steps a global load of the loop is issued ahead of its first use; "
        "ld>st: fraction of loads issued after a store of the same iteration"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated subset of " + ",".join(DTYPES))
    ap.add_argument("--out", default=DEFAULT_OUT, help="JSON output path")
    ap.add_argument("--workdir", default=None, help="keep cubins here (default: a temp folder)")
    ap.add_argument("--check", action="store_true", help="exit 1 listing every missed target")
    ap.add_argument("--per-load", action="store_true", help="also every load's record (loads.per_load)")
    args = ap.parse_args(argv)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        ap.error(f"unknown dtype(s) {bad}; choose from {DTYPES}")
    try:
        tools = find_tools()
    except ToolsMissing as e:
        print(f"sass_report: skipped: {e}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        report = build_report(tools, dtypes, workdir)
    # The committed report keeps the loads' summaries: every load's record (~4,500 of them, four
    # fifths of the file) comes back with --per-load, from the same sources, to study a kernel.
    if not args.per_load:
        for e in report["kernels"].values():
            e.get("loads", {}).pop("per_load", None)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1, sort_keys=False)
        f.write("\n")
    print(table(report))
    print(f"wrote {args.out}")
    if args.check:
        misses = check(report)
        if misses:
            print(f"\n{len(misses)} target(s) missed:")
            print("\n".join("  " + m for m in misses))
            return 1
        print("\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
