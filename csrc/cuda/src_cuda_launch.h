// src_cuda_launch.h — the per-dtype kernel launchers (defined in src_cuda_<dtype>.cu).
#pragma once

#include <cuda_runtime.h>

#include "../src_params.h"

namespace srcext {
namespace cuda {

#define SRCEXT_DECLARE_LAUNCHERS(NAME)                                                     \
  void forward_##NAME(const ForwardParams& p, bool save, cudaStream_t stream);             \
  void backward_##NAME(const BackwardParams& p, bool detach, bool st, cudaStream_t stream);

SRCEXT_DECLARE_LAUNCHERS(f32)
SRCEXT_DECLARE_LAUNCHERS(f64)
SRCEXT_DECLARE_LAUNCHERS(bf16)
SRCEXT_DECLARE_LAUNCHERS(f16)
#undef SRCEXT_DECLARE_LAUNCHERS

}  // namespace cuda
}  // namespace srcext
