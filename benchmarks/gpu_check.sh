#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU and no internet (torch and nvcc installed):
# build srcext in place, run the CUDA tests, benchmark, and write logs plus a JSON/Markdown
# summary into the directory given as the argument (default benchmarks/results/).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Budget: under 8 minutes on an H200 (stage limits 200 + 170 + 180 s). A failing stage is
# recorded in the summary and the script goes on, so one run always yields its results.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=$(mkdir -p "${1:-benchmarks/results}" && cd "${1:-benchmarks/results}" && pwd)
PY=${PYTHON:-python}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
if [ -z "${CUDA_HOME:-}" ] && command -v nvcc >/dev/null; then
  CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  export CUDA_HOME
fi
# Build for the GPU in this machine only: shortest build.
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  TORCH_CUDA_ARCH_LIST=$($PY -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
  export TORCH_CUDA_ARCH_LIST
fi
status() { echo "$1=$2" >> "$OUT/stages.txt"; }
: > "$OUT/stages.txt"

{ date -u; nvidia-smi; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; nvcc --version; git rev-parse HEAD; } > "$OUT/env.txt" 2>&1

echo "== build (CUDA_HOME=$CUDA_HOME, archs $TORCH_CUDA_ARCH_LIST)"
timeout 200 $PY -m pip install --no-build-isolation --no-deps -v . > "$OUT/build.log" 2>&1
status build $?
tail -3 "$OUT/build.log"
# ptxas register/spill report of the kernels, for the record
grep -E "registers|spill" "$OUT/build.log" > "$OUT/ptxas.txt" 2>/dev/null || true

echo "== CUDA tests"
# test_cuda.py (the CUDA-only checks) and the CUDA cases of the op and layer suites, which are
# parametrised over the device: -m cuda selects them and leaves the CPU cases out.
(cd /tmp && timeout 170 $PY -m pytest "$OLDPWD/tests/test_cuda.py" "$OLDPWD/tests/test_ops.py" \
  "$OLDPWD/tests/test_layer.py" -m cuda -q -p no:cacheprovider -p no:logging \
  -o addopts="" -rs --junitxml="$OUT/pytest_cuda.xml") > "$OUT/pytest_cuda.log" 2>&1
status cuda_tests $?
tail -3 "$OUT/pytest_cuda.log"

echo "== benchmark"
timeout 180 $PY benchmarks/speed.py --device cuda --out "$OUT/speed_cuda.json" > "$OUT/speed_cuda.txt" 2>&1
status benchmark $?
tail -30 "$OUT/speed_cuda.txt"

$PY benchmarks/gpu_summary.py "$OUT"
