#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU and no internet (torch and nvcc installed):
# build srcext in place, run the CUDA tests, benchmark, profile the kernels, and write logs
# plus a JSON/Markdown summary into the directory given as the argument (default
# benchmarks/results/).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Budget: at most 8 minutes, stage limits 105 + 110 + 105 + 60 + 25 + 35 + 30 s = 470 s; the
# run of 2026-11-30 took 232 s (build 58, tests 95, benchmark 44, projection 10, profile 20),
# and the stages added since (the layer's precision modes, the kernels timed three ways, the
# forwards' source counters), not yet run on a GPU, should take about 90 s more. Each stage
# writes its own files as it ends, so a run cut off keeps what it measured. A failing stage is
# recorded in the summary and the script goes on; a failed build ends it at once (nothing
# after it could run).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=$(mkdir -p "${1:-benchmarks/results}" && cd "${1:-benchmarks/results}" && pwd)
# Images with only python3 (no `python`) are common on GPU machines.
PY=${PYTHON:-$(command -v python || command -v python3)}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
export PYTHONUNBUFFERED=1
if [ -z "${CUDA_HOME:-}" ] && command -v nvcc >/dev/null; then
  CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  export CUDA_HOME
fi
# Build for the GPU in this machine only: shortest build.
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  TORCH_CUDA_ARCH_LIST=$($PY -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
  export TORCH_CUDA_ARCH_LIST
fi
# The CPU kernels' three instruction-set clones (csrc/recurrence/cpu/src_recurrence_cpu_kernels.h) make the longest
# compiles of the build; nothing here measures the CPU kernels, so build the baseline alone.
export CFLAGS="${CFLAGS:-} -DSRCEXT_NO_CPU_CLONES"
status() { echo "$1=$2" >> "$OUT/stages.txt"; }
: > "$OUT/stages.txt"
stage_start() { echo "== $1 ($(date -u +%T))"; }

{ date -u; nvidia-smi; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  nvcc --version; git rev-parse HEAD || echo "commit ${SRCEXT_COMMIT:-unknown}"; nproc; } > "$OUT/env.txt" 2>&1

stage_start "build (CUDA_HOME=$CUDA_HOME, archs $TORCH_CUDA_ARCH_LIST, $MAX_JOBS jobs)"
SECONDS=0
timeout 105 $PY -m pip install --no-build-isolation --no-deps -v . > "$OUT/build.log" 2>&1
code=$?
status build $code
echo "build: exit $code after ${SECONDS} s"
tail -3 "$OUT/build.log"
if [ $code -ne 0 ]; then
  grep -E -m 20 "error|Error" "$OUT/build.log"
  $PY benchmarks/gpu_summary.py "$OUT"
  exit 1
fi
$PY -c "import srcext; assert srcext.fused_available('cuda'), 'built without the CUDA kernels'" \
  || { status build_has_cuda 1; $PY benchmarks/gpu_summary.py "$OUT"; exit 1; }

stage_start "CUDA tests"
# test_cuda.py (the CUDA-only checks) and the CUDA cases of the suites that are parametrised
# over the device: -m cuda selects them and leaves the CPU cases out. Run from /tmp, so that
# srcext is imported from the install.
SUITES=()
for name in test_cuda test_ops test_layer test_lengths test_dynamics test_events; do SUITES+=("$PWD/tests/$name.py"); done
(cd /tmp && timeout 110 $PY -m pytest "${SUITES[@]}" -m cuda -q -p no:cacheprovider -p no:logging \
  -o addopts="" -rs --durations=15 --junitxml="$OUT/pytest_cuda.xml") > "$OUT/pytest_cuda.log" 2>&1
status cuda_tests $?
tail -3 "$OUT/pytest_cuda.log"

stage_start "benchmark"
# torch.compile's worker processes count as foreign load, the likely cause of the 25 busy
# rounds of 99 (flagged) in the run of 2026-11-30. One compile thread: no workers. Its kernel
# timing is also the A/B of the kernels' variants: two neurons a thread (the default) against
# one (*_1lane: SRCEXT_CUDA_LANES=1), the forward's and the bfloat16 detached backward's, each
# timed three ways.
TORCHINDUCTOR_COMPILE_THREADS=1 timeout 105 $PY benchmarks/speed.py --device cuda --copy-mib 2048 --out "$OUT/speed_cuda.json" \
  > "$OUT/speed_cuda.txt" 2>&1
status benchmark $?
tail -30 "$OUT/speed_cuda.txt"

stage_start "layer in three precision modes"
# SRC against nn.GRU with both in strict FP32, both in TF32, both under bf16 autocast (the
# committed comparison ran the GRU in TF32 against SRC in strict FP32), with the kernel names
timeout 60 $PY benchmarks/layer_precision.py --device cuda --out "$OUT/layer_precision_cuda.json" \
  > "$OUT/layer_precision_cuda.txt" 2>&1
status layer_precision $?
grep -v "^USDT" "$OUT/layer_precision_cuda.txt" | tail -12

stage_start "event projection"
timeout 25 $PY benchmarks/projection_bench.py --device cuda --out "$OUT/projection_cuda.json" \
  > "$OUT/projection_cuda.txt" 2>&1
status projection $?
tail -12 "$OUT/projection_cuda.txt"

if command -v ncu >/dev/null; then
  stage_start "profile (ncu)"
  timeout 35 ncu --clock-control none --profile-from-start off -k "regex:src_(forward|exact_backward|detached_backward)_kernel" \
    --section SpeedOfLight \
    --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --section WarpStateStats \
    $PY benchmarks/gpu_profile.py > "$OUT/ncu.txt" 2>&1
  status ncu $?
  grep -E "^  [a-z_]+.*\(|Memory Throughput|DRAM Throughput|Duration|Achieved Occupancy|Registers Per" \
    "$OUT/ncu.txt" | head -40
  stage_start "source counters of the forwards (ncu)"
  # Where the f32 and bf16 forwards (training and inference) spend their issue slots and
  # stalls, per SASS line: what the trimmed cell math (issue 40) is to be read against.
  timeout 30 ncu --clock-control none --profile-from-start off -k "regex:src_forward_kernel" \
    --section SourceCounters --print-details all \
    $PY benchmarks/gpu_profile.py --T 200 > "$OUT/ncu_source_forward.txt" 2>&1
  status ncu_source_forward $?
  grep -E -m 20 "Warp Stall|Branch Instructions|Instructions Executed" "$OUT/ncu_source_forward.txt"
fi

$PY benchmarks/gpu_summary.py "$OUT"
