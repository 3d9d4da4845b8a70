#!/usr/bin/env bash
# bash benchmarks/gpu_check.sh [OUT_DIR]: one command for a machine with an NVIDIA GPU and no
# internet (torch and nvcc installed): build srcext in place, run the CUDA tests, benchmark,
# profile the kernels; logs and a JSON/Markdown summary go into OUT_DIR (default benchmarks/results/).
#
# Budget: at most 8 minutes; stage limits 105 + 110 + 105 + 60 + 25 + 35 + 30 s = 470 s. The run
# of 2026-11-30 took 232 s (build 58, tests 95, benchmark 44, projection 10, profile 20); the
# stages added since (precision modes, kernels timed three ways, source counters) should add
# ~90 s. Each stage writes its files as it ends (a run cut off keeps what it measured); a failing
# stage is recorded in the summary and the rest run, but a failed build ends the script.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=$(mkdir -p "${1:-benchmarks/results}" && cd "${1:-benchmarks/results}" && pwd)
PY=${PYTHON:-$(command -v python || command -v python3)}  # images with only python3 are common on GPU machines
export MAX_JOBS=${MAX_JOBS:-$(nproc)} PYTHONUNBUFFERED=1
command -v nvcc >/dev/null && export CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")}
# Build for the GPU in this machine only: shortest build.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$($PY -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")}
# The CPU kernels' three instruction-set clones (csrc/recurrence/cpu/src_recurrence_cpu_kernels.h) make the longest
# compiles of the build; nothing here measures the CPU kernels, so build the baseline alone.
export CFLAGS="${CFLAGS:-} -DSRCEXT_NO_CPU_CLONES"
: > "$OUT/stages.txt"
# stage TITLE NAME SECONDS LOG COMMAND...: COMMAND for SECONDS at most, output in OUT/LOG, NAME=exit code in stages.txt
stage() {
  echo "== $1 ($(date -u +%T))"
  local name=$2 limit=$3 log=$4 code; shift 4
  timeout "$limit" "$@" > "$OUT/$log" 2>&1
  code=$?; echo "$name=$code" >> "$OUT/stages.txt"; return $code
}
summary_and_exit() { $PY benchmarks/gpu_summary.py "$OUT"; exit "$1"; }

{ date -u; nvidia-smi; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  nvcc --version; git rev-parse HEAD || echo "commit ${SRCEXT_COMMIT:-unknown}"; nproc; } > "$OUT/env.txt" 2>&1

SECONDS=0
stage "build (CUDA_HOME=$CUDA_HOME, archs $TORCH_CUDA_ARCH_LIST, $MAX_JOBS jobs)" build 105 build.log \
  $PY -m pip install --no-build-isolation --no-deps -v .
code=$?
echo "build: exit $code after ${SECONDS} s"
tail -3 "$OUT/build.log"
[ $code -eq 0 ] || { grep -E -m 20 "error|Error" "$OUT/build.log"; summary_and_exit 1; }
$PY -c "import srcext; assert srcext.fused_available('cuda'), 'built without the CUDA kernels'" \
  || { echo "build_has_cuda=1" >> "$OUT/stages.txt"; summary_and_exit 1; }

# test_cuda.py and the CUDA cases (-m cuda) of the suites parametrised over the device, run from
# /tmp so that srcext is imported from the install.
SUITES=("$PWD"/tests/test_{cuda,ops,layer,lengths,dynamics,events}.py)
(cd /tmp && stage "CUDA tests" cuda_tests 110 pytest_cuda.log $PY -m pytest "${SUITES[@]}" -m cuda -q \
  -p no:cacheprovider -p no:logging -o addopts="" -rs --durations=15 --junitxml="$OUT/pytest_cuda.xml")
tail -3 "$OUT/pytest_cuda.log"

# One compile thread, no workers: torch.compile's count as foreign load (likely the 25 flagged
# busy rounds of 99 on 2026-11-30). Its kernel timing is also the A/B of two neurons a thread
# (default) against one (*_1lane: SRCEXT_CUDA_LANES=1), forward and bf16 detached backward.
TORCHINDUCTOR_COMPILE_THREADS=1 stage benchmark benchmark 105 speed_cuda.txt \
  $PY benchmarks/speed.py --device cuda --copy-mib 2048 --out "$OUT/speed_cuda.json"
tail -30 "$OUT/speed_cuda.txt"

# SRC against nn.GRU with both in strict FP32, both in TF32, both under bf16 autocast (the
# committed comparison ran the GRU in TF32 against SRC in strict FP32), with the kernel names
stage "layer in three precision modes" layer_precision 60 layer_precision_cuda.txt \
  $PY benchmarks/layer_precision.py --device cuda --out "$OUT/layer_precision_cuda.json"
grep -v "^USDT" "$OUT/layer_precision_cuda.txt" | tail -12

stage "event projection" projection 25 projection_cuda.txt \
  $PY benchmarks/projection_bench.py --device cuda --out "$OUT/projection_cuda.json"
tail -12 "$OUT/projection_cuda.txt"

if command -v ncu >/dev/null; then
  NCU=(ncu --clock-control none --profile-from-start off)
  stage "profile (ncu)" ncu 35 ncu.txt "${NCU[@]}" -k "regex:src_(forward|exact_backward|detached_backward)_kernel" \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    --section WarpStateStats $PY benchmarks/gpu_profile.py
  grep -E "^  [a-z_]+.*\(|Memory Throughput|DRAM Throughput|Duration|Achieved Occupancy|Registers Per" "$OUT/ncu.txt" | head -40
  # Where the f32 and bf16 forwards (training and inference) spend their issue slots and
  # stalls, per SASS line: what the trimmed cell math (issue 40) is to be read against.
  stage "source counters of the forwards (ncu)" ncu_source_forward 30 ncu_source_forward.txt "${NCU[@]}" \
    -k "regex:src_forward_kernel" --section SourceCounters --print-details all $PY benchmarks/gpu_profile.py --T 200
  grep -E -m 20 "Warp Stall|Branch Instructions|Instructions Executed" "$OUT/ncu_source_forward.txt"
fi

$PY benchmarks/gpu_summary.py "$OUT"
