// src_launch_kernel.cuh — the one place a CUDA kernel is launched.
//
// Every launch goes through launch_kernel<&kernel>(grid, block, stream, args...). Under nvcc it
// is the triple-chevron launch. In the host emulation build (SRCEXT_CUDA_EMULATION, see
// tests/emulation/) the same call runs every (block, thread) of the grid one after another
// on the CPU, after checking the launch configuration as the runtime would, and records what
// was launched; so the test suite executes these very sources without a GPU.
#pragma once

#include <cuda_runtime.h>

#if defined(SRCEXT_CUDA_EMULATION)
#include "emulated_launch.h"  // the tests' (tests/emulation, on that build's include path)
#endif

namespace srcext {
namespace cuda {

template <auto Kernel, typename... Args>
inline void launch_kernel(dim3 grid, dim3 block, cudaStream_t stream, const Args&... args) {
#if defined(SRCEXT_CUDA_EMULATION)
  emulation::run_grid<Kernel>(grid, block, stream, args...);
#else
  Kernel<<<grid, block, 0, stream>>>(args...);
#endif
}

}  // namespace cuda
}  // namespace srcext
