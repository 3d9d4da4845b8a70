#!/usr/bin/env bash
# The CUDA kernels' host emulation under AddressSanitizer and UBSan: builds the emulation with
# both (into build/srcext_cuda_emulation_sanitized), preloads their runtimes into Python and runs
# tests/test_cuda_emulation.py. Every output buffer is pre-filled with a NaN pattern and checked
# written by the emulation itself; the sanitizers catch any read or write out of bounds and any
# undefined behaviour (signed overflow in an index, misaligned access, ...).
#
#   bash tests/sanitize_cuda_emulation.sh           # every emulation test but the 64-bit one
#   bash tests/sanitize_cuda_emulation.sh --quick   # one case per kind (CI)
#
# The 64-bit indexing test is left out: it maps buffers of many GB, which the sanitizers'
# allocator would back with shadow memory.
set -euo pipefail
cd "$(dirname "$0")"
CXX=${CXX:-c++}
ASAN_LIB=$($CXX -print-file-name=libasan.so)
UBSAN_LIB=$($CXX -print-file-name=libubsan.so)
for lib in "$ASAN_LIB" "$UBSAN_LIB"; do
  [ -f "$lib" ] || { echo "sanitize_cuda_emulation: $lib not found (install the compiler's sanitizer runtimes)"; exit 1; }
done
SELECT="not 64_bit"
if [ "${1:-}" = "--quick" ]; then
  SELECT="not 64_bit and (match_cpu_op or launch or rejects or non_finite or gradcheck or half_storage)"
fi
export SRCEXT_EMULATION_SANITIZE=1
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
LD_PRELOAD="$ASAN_LIB $UBSAN_LIB" python -m pytest test_cuda_emulation.py -q -p no:cacheprovider \
  -k "$SELECT"
