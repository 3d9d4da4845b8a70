// src_events_launch.h — the per-dtype launchers of the event-driven projection's kernels
// (defined in src_events.cu from src_events.cuh).
#pragma once

#include <cuda_runtime.h>

#include "../src_events.h"

namespace srcext {
namespace cuda {

// Threads per block of every event kernel. Here, so that the host code that checks the grid
// (src_events_backend.h) uses the same number as the launches.
constexpr int kEventThreads = 256;

#define SRCEXT_DECLARE_EVENT_LAUNCHERS(NAME)                            \
  void event_count_##NAME(const EventsBuildParams& p, cudaStream_t s);  \
  void event_fill_##NAME(const EventsBuildParams& p, cudaStream_t s);   \
  void event_matmul_##NAME(const EventMatmulParams& p, cudaStream_t s); \
  void event_weight_grad_##NAME(const EventWeightGradParams& p, cudaStream_t s);

SRCEXT_DECLARE_EVENT_LAUNCHERS(f32)
SRCEXT_DECLARE_EVENT_LAUNCHERS(f64)
SRCEXT_DECLARE_EVENT_LAUNCHERS(bf16)
SRCEXT_DECLARE_EVENT_LAUNCHERS(f16)
#undef SRCEXT_DECLARE_EVENT_LAUNCHERS

}  // namespace cuda
}  // namespace srcext
