// emulated_launch.h — a CUDA launch executed on the host: the grid's blocks and threads one
// after another, in order.
//
// Exact for the srcext kernels, which share nothing between threads (no shared memory,
// barriers, warp intrinsics or atomics): each thread's result depends only on its own inputs,
// so the order in which threads run cannot change it. Before running, the launch
// configuration is checked as the CUDA runtime checks it; afterwards the launch is appended to
// a log the tests read (which kernel instance, grid, block, stream).
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_runtime.h"

namespace srcext {
namespace cuda {
namespace emulation {

struct LaunchRecord {
  std::string
      kernel;  // the kernel instance, e.g. "srcext::cuda::src_forward_kernel<float, float, true>"
  dim3 grid, block;
  std::uintptr_t stream;
  int64_t blocks_run;  // every block of the grid, or the size of the block subset
};

struct LaunchState {
  std::mutex mutex;
  std::vector<LaunchRecord> log;
  // Empty: run every block. Otherwise run only these (linear) block indices: a launch over
  // buffers too large to fill, of which only the listed blocks' pages are ever touched.
  std::vector<int64_t> block_subset;
};

inline LaunchState& state() {
  static LaunchState s;
  return s;
}

// The kernel instance's name, from the compiler's signature of this function.
template <auto Kernel>
std::string kernel_name() {
  const std::string pretty = __PRETTY_FUNCTION__;
  const std::string key = "Kernel = ";
  const auto begin = pretty.find(key);
  if (begin == std::string::npos) return pretty;
  std::string name;
  int depth = 0;
  for (auto i = begin + key.size(); i < pretty.size(); ++i) {
    const char c = pretty[i];
    if (depth == 0 && (c == ';' || c == ']')) break;
    depth += (c == '<') - (c == '>');
    name += c;
  }
  if (!name.empty() && name[0] == '&') name.erase(0, 1);
  return name;
}

// The runtime's launch limits (compute capability 9.0; the same for every GPU srcext builds for).
inline void check_configuration(const dim3& grid, const dim3& block) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  TORCH_CHECK(block.x >= 1 && block.y >= 1 && block.z >= 1 && block.x <= 1024 && block.y <= 1024 &&
                  block.z <= 64 && threads <= 1024,
              "CUDA emulation: invalid configuration argument: block (", block.x, ", ", block.y,
              ", ", block.z, ")");
  TORCH_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 2147483647u &&
                  grid.y <= 65535 && grid.z <= 65535,
              "CUDA emulation: invalid configuration argument: grid (", grid.x, ", ", grid.y, ", ",
              grid.z, ")");
}

inline void run_block(int64_t linear, const dim3& grid, const dim3& block,
                      const std::function<void()>& body) {
  ThreadPosition& pos = position;
  pos.grid_dim = grid;
  pos.block_dim = block;
  pos.block_idx = {static_cast<unsigned>(linear % grid.x),
                   static_cast<unsigned>((linear / grid.x) % grid.y),
                   static_cast<unsigned>(linear / (int64_t(grid.x) * grid.y))};
  for (unsigned z = 0; z < block.z; ++z)
    for (unsigned y = 0; y < block.y; ++y)
      for (unsigned x = 0; x < block.x; ++x) {
        pos.thread_idx = {x, y, z};
        body();
      }
}

template <auto Kernel, typename... Args>
void run_grid(dim3 grid, dim3 block, cudaStream_t stream, const Args&... args) {
  check_configuration(grid, block);
  LaunchState& st = state();
  std::vector<int64_t> subset;
  {
    std::lock_guard<std::mutex> lock(st.mutex);
    subset = st.block_subset;
  }
  const int64_t blocks = int64_t(grid.x) * grid.y * grid.z;
  const std::function<void()> body = [&]() { Kernel(args...); };
  if (subset.empty()) {
    for (int64_t b = 0; b < blocks; ++b) run_block(b, grid, block, body);
  } else {
    for (const int64_t b : subset) {
      TORCH_CHECK(b >= 0 && b < blocks, "CUDA emulation: block ", b,
                  " of the subset is outside "
                  "the grid of ",
                  blocks, " blocks");
      run_block(b, grid, block, body);
    }
  }
  std::lock_guard<std::mutex> lock(st.mutex);
  st.log.push_back({kernel_name<Kernel>(), grid, block, reinterpret_cast<std::uintptr_t>(stream),
                    subset.empty() ? blocks : static_cast<int64_t>(subset.size())});
}

}  // namespace emulation
}  // namespace cuda
}  // namespace srcext
