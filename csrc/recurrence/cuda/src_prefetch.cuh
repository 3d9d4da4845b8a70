// src_prefetch.cuh — loads into the L2 cache that cost no register, and the read-only loads
// that go with them.
//
// prefetch_l2: `prefetch.global.L2` (one CCTL instruction, no destination, nothing to wait
// for). The exact-BPTT backward issues them a loop iteration ahead of the register loads of
// the same addresses, so that the DRAM latency is covered by the prefetch and the register
// load waits only for an L2 hit (benchmarks/GPU_NOTES.md: the latencies).
//
// load_nc: a load through the read-only path (`ld.global.nc`, LDG.E.CONSTANT), stated instead
// of inferred. The compiler models inline asm as a possible write to memory, so next to a
// prefetch it no longer proves the streamed inputs read-only from `__restrict__`: the loads
// became plain LDG.E, and ptxas kept them behind the walk's stores. Read-only loads it may
// move past stores and prefetches.
#pragma once

#include <cstring>
#include <type_traits>

namespace srcext {
namespace cuda {

template <typename T>
__device__ __forceinline__ void prefetch_l2(const T* p) {
#if defined(__CUDA_ARCH__)
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#else
  (void)p;  // a host build of the kernels: no cache to warm
#endif
}

template <typename T>
__device__ __forceinline__ T load_nc(const T* p) {
#if defined(__CUDA_ARCH__)
  static_assert(sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8, "a 2, 4 or 8-byte value");
  using Bits =
      std::conditional_t<sizeof(T) == 2, unsigned short,
                         std::conditional_t<sizeof(T) == 4, unsigned int, unsigned long long>>;
  const Bits bits = __ldg(reinterpret_cast<const Bits*>(p));
  T v;
  memcpy(&v, &bits, sizeof(T));
  return v;
#else
  return *p;  // host emulation
#endif
}

// load_fresh: a load the compiler must issue again each time (`ld.global.cv`, __ldcv), so
// that it cannot reuse what it computed from an earlier read of the same value.
template <typename T>
__device__ __forceinline__ T load_fresh(const T* p) {
#if defined(__CUDA_ARCH__)
  return __ldcv(p);
#else
  return *p;  // host emulation
#endif
}

}  // namespace cuda
}  // namespace srcext
