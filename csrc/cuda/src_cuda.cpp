// src_cuda.cpp — the CUDA backend of the srcext ops: device guard, current stream, a checked
// launch of the kernel for the input's dtype (the rest is csrc/src_ops.h).
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../src_ops.h"
#include "src_cuda_launch.h"

namespace srcext {
namespace cuda {
namespace {

// One thread per neuron: the grid must fit its x dimension (2^31 - 1 blocks).
void check_grid(int64_t N) {
  TORCH_CHECK((N + kThreads - 1) / kThreads <= int64_t(INT32_MAX), "srcext: B * H = ", N,
              " neurons is more than one CUDA launch can hold");
}

struct CudaBackend {
  using Guard = c10::cuda::CUDAGuard;

  static void forward(const ForwardParams& p, at::ScalarType dtype, bool save) {
    check_grid(p.N);
    const auto fn = kernel_for(dtype, &forward_f32, &forward_f64, &forward_bf16, &forward_f16);
    fn(p, save, c10::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  static void backward(const BackwardParams& p, at::ScalarType dtype, bool detach, bool st) {
    check_grid(p.N);
    const auto fn = kernel_for(dtype, &backward_f32, &backward_f64, &backward_bf16, &backward_f16);
    fn(p, detach, st, c10::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(srcext, CUDA, m) {
  m.impl("src_forward", &src_forward_op<CudaBackend>);
  m.impl("src_backward", &src_backward_op<CudaBackend>);
}

}  // namespace cuda
}  // namespace srcext
