// cuda_runtime.h — stand-in for the CUDA runtime header in the host emulation build only.
//
// tests/emulation/ is first on that build's include path, so the kernel sources'
// `#include <cuda_runtime.h>` lands here: the CUDA keywords become plain C++, and the
// built-in index variables become thread-local globals that the emulated launch
// (emulated_launch.h) sets before it calls the kernel body for each (block, thread).
#pragma once

#if !defined(SRCEXT_CUDA_EMULATION)
#error "tests/emulation/cuda_runtime.h is for the host emulation build only"
#endif

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>

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
inline T __ldg(const T* p) {
  return *p;
}

namespace srcext {
namespace cuda {
namespace emulation {
// The device's approximate instructions (ex2 / rcp .approx.ftz.f32, see src_math.h) run
// here as the host's correctly rounded functions. Their documented maximum errors (PTX ISA),
// relative:
inline constexpr float kEx2ApproxError = 0x1p-22f;      // 2 ulp
inline constexpr float kRcpApproxError = 0x1p-23f;      // 1 ulp
// The error model the tests can set (set_approx_error): 0 none (the default); +1 / -1 every
// result off by the whole bound, with that sign; 2 by the whole bound with a sign drawn from
// the result's bits (deterministic). The tolerances must hold for any error the device makes
// within the bound.
inline std::atomic<int> approx_error_mode{0};

inline float approx_result(float exact, float bound) {
  const int mode = approx_error_mode.load(std::memory_order_relaxed);
  if (mode == 0 || !std::isfinite(exact)) return exact;
  float sign = mode > 0 ? 1.0f : -1.0f;
  if (mode == 2) {
    uint32_t bits;
    std::memcpy(&bits, &exact, sizeof(bits));
    sign = ((bits * 0x9E3779B1u) >> 31) ? -1.0f : 1.0f;
  }
  return exact * (1.0f + sign * bound);
}
}  // namespace emulation
}  // namespace cuda
}  // namespace srcext

// The device math of csrc/common/src_math.h on the host: its special-function approximations
// are the correctly rounded host functions through the error model above, so that the tests
// can put every result at the documented bound (the emulation's approximations differ from
// the device's by up to that bound).
#define SRC_DEVICE_MATH 1

namespace srcext {
namespace math {
inline float exp2_approx(float x) {
  return cuda::emulation::approx_result(std::exp2(x), cuda::emulation::kEx2ApproxError);
}
inline float reciprocal_approx(float x) {
  return cuda::emulation::approx_result(1.0f / x, cuda::emulation::kRcpApproxError);
}
}  // namespace math
}  // namespace srcext
