// src_cuda_launch.h — the per-dtype kernel launchers (defined in src_cuda_<dtype>.cu).
#pragma once

#include <cuda_runtime.h>

#include "../src_params.h"

namespace srcext {
namespace cuda {

// Threads per block: one thread per neuron. Here, not in src_kernels.cuh, so that the host
// code that checks the grid size (src_cuda.cpp) uses the same number as the launches.
constexpr int kThreads = 256;

#define SRCEXT_DECLARE_LAUNCHERS(NAME)                                         \
  void forward_##NAME(const ForwardParams& p, bool save, cudaStream_t stream); \
  void backward_##NAME(const BackwardParams& p, bool detach, bool st, cudaStream_t stream);

SRCEXT_DECLARE_LAUNCHERS(f32)
SRCEXT_DECLARE_LAUNCHERS(f64)
SRCEXT_DECLARE_LAUNCHERS(bf16)
SRCEXT_DECLARE_LAUNCHERS(f16)
#undef SRCEXT_DECLARE_LAUNCHERS

}  // namespace cuda
}  // namespace srcext
