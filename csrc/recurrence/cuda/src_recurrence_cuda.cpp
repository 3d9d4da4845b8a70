// src_recurrence_cuda.cpp — the CUDA backend of the srcext ops on the CUDA runtime: device guard,
// current stream, launch check (the rest is src_recurrence_cuda_backend.h and
// csrc/recurrence/src_recurrence_ops.h).
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "src_recurrence_cuda_backend.h"

namespace srcext {
namespace cuda {
namespace {

struct CudaRuntime {
  using Guard = c10::cuda::CUDAGuard;
  static cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream(); }
  static void check_launch() { C10_CUDA_KERNEL_LAUNCH_CHECK(); }
};

}  // namespace

TORCH_LIBRARY_IMPL(srcext, CUDA, m) {
  m.impl("src_forward", &src_forward_op<CudaBackend<CudaRuntime>>);
  m.impl("src_backward", &src_backward_op<CudaBackend<CudaRuntime>>);
}

}  // namespace cuda
}  // namespace srcext
