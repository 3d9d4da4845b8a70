// src_events_cuda.cpp — the CUDA backend of the event-driven projection ops on the CUDA
// runtime (the rest is src_events_cuda_backend.h and csrc/events/src_events_ops.h).
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "src_events_cuda_backend.h"

namespace srcext {
namespace cuda {
namespace {

struct CudaEventsRuntime {
  using Guard = c10::cuda::CUDAGuard;
  static cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream(); }
  static void check_launch() { C10_CUDA_KERNEL_LAUNCH_CHECK(); }
  static bool capturing() {
    cudaStreamCaptureStatus status;
    C10_CUDA_CHECK(cudaStreamIsCapturing(stream(), &status));
    return status != cudaStreamCaptureStatusNone;
  }
};

using Backend = CudaEventsBackend<CudaEventsRuntime>;

}  // namespace

TORCH_LIBRARY_IMPL(srcext, CUDA, m) {
  m.impl("src_events", &src_events_op<Backend>);
  m.impl("src_event_matmul", &src_event_matmul_op<Backend>);
  m.impl("src_event_weight_grad", &src_event_weight_grad_op<Backend>);
  m.impl("src_projection", &src_projection_op<Backend>);
  m.impl("src_projection_weight_grad", &src_projection_weight_grad_op<Backend>);
}

}  // namespace cuda
}  // namespace srcext
