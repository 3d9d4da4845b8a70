// src_recurrence_cuda_backend.h — the CUDA backend of the srcext ops (the part
// csrc/recurrence/src_recurrence_ops.h asks of a backend), over a Runtime that supplies the device
// guard, the current stream and the post-launch error check: the CUDA runtime in
// src_recurrence_cuda.cpp, the host emulation in tests/emulation/src_cuda_emulation.cpp. Both run
// the same launchers.
#pragma once

#include <c10/util/Exception.h>

#include "../../common/src_switch.h"
#include "../src_recurrence_ops.h"
#include "src_recurrence_cuda_launch.h"

namespace srcext {
namespace cuda {

// One thread per neuron: the grid must fit its x dimension (2^31 - 1 blocks).
inline void check_grid(int64_t N) {
  TORCH_CHECK((N + kThreads - 1) / kThreads <= int64_t(INT32_MAX), "srcext: B * H = ", N,
              " neurons is more than one CUDA launch can hold");
}

// The exact backward counts a sequence's chunks of kCheckpointInterval steps in an int
// (src_recurrence_kernels.cuh: a 32-bit counter costs one register where the kernel is at its cap).
inline void check_chunks(int64_t T) {
  TORCH_CHECK_VALUE(num_checkpoints(T) <= int64_t(INT32_MAX), "srcext: T = ", T,
                    " steps is more than the CUDA backward can walk (at most ",
                    int64_t(INT32_MAX) * kCheckpointInterval, ")");
}

template <typename Runtime>
struct CudaBackend {
  using Guard = typename Runtime::Guard;

  // The CUDA caching allocator already reuses memory.
  static at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
    return at::empty(sizes, options);
  }

  static void forward(const ForwardParams& p, at::ScalarType dtype, bool save) {
    check_grid(p.N);
    SRC_DTYPE_SWITCH(dtype, scalar_t, launch_forward<scalar_t>(p, save, Runtime::stream()));
    Runtime::check_launch();
  }

  static void backward(const BackwardParams& p, at::ScalarType dtype, bool detach, bool st) {
    check_grid(p.N);
    check_chunks(p.T);
    SRC_DTYPE_SWITCH(dtype, scalar_t, launch_backward<scalar_t>(p, detach, st, Runtime::stream()));
    Runtime::check_launch();
  }
};

}  // namespace cuda
}  // namespace srcext
