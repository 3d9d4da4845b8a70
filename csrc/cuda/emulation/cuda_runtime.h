// cuda_runtime.h — stand-in for the CUDA runtime header in the host emulation build only.
//
// csrc/cuda/emulation/ is first on that build's include path, so the kernel sources'
// `#include <cuda_runtime.h>` lands here: the CUDA keywords become plain C++, and the
// built-in index variables become thread-local globals that the emulated launch
// (emulated_launch.h) sets before it calls the kernel body for each (block, thread).
#pragma once

#if !defined(SRCEXT_CUDA_EMULATION)
#error "csrc/cuda/emulation/cuda_runtime.h is for the host emulation build only"
#endif

#include <cmath>
#include <cstdint>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)

struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
      : x(x_), y(y_), z(z_) {}
};

typedef struct CUstream_st* cudaStream_t;

namespace srcext {
namespace cuda {
namespace emulation {
// The position of the (block, thread) being run: what threadIdx and friends read.
struct ThreadPosition {
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
};
inline thread_local ThreadPosition position{};
}  // namespace emulation
}  // namespace cuda
}  // namespace srcext

#define threadIdx (::srcext::cuda::emulation::position.thread_idx)
#define blockIdx (::srcext::cuda::emulation::position.block_idx)
#define blockDim (::srcext::cuda::emulation::position.block_dim)
#define gridDim (::srcext::cuda::emulation::position.grid_dim)

// Device intrinsics the kernels may use, with their host meaning (round to nearest).
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return std::exp(x); }
template <typename T>
inline T __ldg(const T* p) { return *p; }
