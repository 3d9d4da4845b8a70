// src_cpu_launch.h — the CPU kernels' entry points (defined in src_cpu_<dtype>.cpp), as the
// backend in src_cpu.cpp calls them: each walks blocks [b, e) of kLanes neurons.
#pragma once

#include <cstdint>

#include "../src_params.h"

namespace srcext {
namespace cpu {

// Neurons per block: 4 AVX-512 / 8 AVX2 vectors of float. Here, not in src_cpu_kernels.h, so
// that the host code that counts the blocks (src_cpu.cpp) uses the same number as the kernels.
constexpr int kLanes = 64;

#define SRCEXT_CPU_DECLARE_ENTRY_POINT(NAME)                                    \
  void forward_##NAME(const ForwardParams& p, bool save, int64_t b, int64_t e); \
  void backward_##NAME(const BackwardParams& p, bool detach, bool st, int64_t b, int64_t e);
// Per storage dtype: with or without lengths, per-layer or per-neuron (dynamics) constants.
#define SRCEXT_CPU_DECLARE_ENTRY_POINTS(NAME)     \
  SRCEXT_CPU_DECLARE_ENTRY_POINT(NAME)            \
  SRCEXT_CPU_DECLARE_ENTRY_POINT(NAME##_lengths)  \
  SRCEXT_CPU_DECLARE_ENTRY_POINT(NAME##_dynamics) \
  SRCEXT_CPU_DECLARE_ENTRY_POINT(NAME##_lengths_dynamics)

SRCEXT_CPU_DECLARE_ENTRY_POINTS(f32)
SRCEXT_CPU_DECLARE_ENTRY_POINTS(f64)
SRCEXT_CPU_DECLARE_ENTRY_POINTS(bf16)
SRCEXT_CPU_DECLARE_ENTRY_POINTS(f16)
#undef SRCEXT_CPU_DECLARE_ENTRY_POINTS
#undef SRCEXT_CPU_DECLARE_ENTRY_POINT

}  // namespace cpu
}  // namespace srcext
