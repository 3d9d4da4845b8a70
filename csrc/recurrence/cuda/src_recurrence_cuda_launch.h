// src_recurrence_cuda_launch.h — the kernel launchers, one per storage type (defined in
// src_recurrence_cuda_<dtype>.cu).
#pragma once

#include <cuda_runtime.h>

#include "../src_recurrence_params.h"

namespace srcext {
namespace cuda {

// Threads per block: one thread per neuron. Here, not in src_recurrence_kernels.cuh, so that the
// host code that checks the grid size (src_recurrence_cuda.cpp) uses the same number as the
// launches.
constexpr int kThreads = 256;

// The launchers of one storage type; their runtime flags become template switches inside.
template <typename scalar_t>
void launch_forward(const ForwardParams& p, bool save, cudaStream_t stream);
template <typename scalar_t>
void launch_backward(const BackwardParams& p, bool detach, bool straight_through,
                     cudaStream_t stream);

}  // namespace cuda
}  // namespace srcext
