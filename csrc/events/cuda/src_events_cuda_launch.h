// src_events_cuda_launch.h — the launchers, one per storage type, of the event-driven projection's
// kernels (defined in src_events_cuda_types.cu from src_events_kernels.cuh).
#pragma once

#include <cuda_runtime.h>

#include "../src_events_schemas.h"

namespace srcext {
namespace cuda {

// Threads per block of every event kernel. Here, so that the host code that checks the grid
// (src_events_cuda_backend.h) uses the same number as the launches.
constexpr int kEventThreads = 256;

// The launchers of one storage type.
template <typename scalar_t>
void launch_event_count(const EventsBuildParams& p, cudaStream_t stream);
template <typename scalar_t>
void launch_event_fill(const EventsBuildParams& p, cudaStream_t stream);
template <typename scalar_t>
void launch_event_matmul(const EventMatmulParams& p, cudaStream_t stream);
template <typename scalar_t>
void launch_event_weight_grad(const EventWeightGradParams& p, cudaStream_t stream);

}  // namespace cuda
}  // namespace srcext
