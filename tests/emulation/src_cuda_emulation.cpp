// src_cuda_emulation.cpp — the CUDA kernels of csrc/recurrence/cuda, compiled by the host compiler and run
// on the CPU. Test-only: tests/cuda_emulation.py builds it (the wheel does not carry it).
//
// The very sources the GPU build compiles are included below; tests/emulation/ comes
// first on the include path, so their <cuda_runtime.h> is the stand-in beside this file, and
// every launch (src_launch_kernel.cuh) runs the grid on the host (emulated_launch.h). The ops
// are registered for CPU tensors under the namespace srcext_cuda_emulation, with the schemas
// of the real ones, so the tests run them exactly as they run torch.ops.srcext.
//
// On top of what the GPU does, every launch that covers the whole grid first fills each
// output buffer with a signalling-NaN pattern that no arithmetic produces, and afterwards
// fails if any element still holds it: a kernel must write every element it owns.
#include <torch/extension.h>

#include <cstring>

#include "cuda_runtime.h"
#include "recurrence/src_recurrence_autograd.h"
#include "recurrence/src_recurrence_schemas.h"
#include "recurrence/cuda/src_recurrence_cuda_backend.h"
#include "recurrence/cuda/src_recurrence_cuda_f32.cu"
#include "recurrence/cuda/src_recurrence_cuda_f64.cu"
#include "recurrence/cuda/src_recurrence_cuda_bf16.cu"
#include "recurrence/cuda/src_recurrence_cuda_f16.cu"

namespace srcext {
namespace cuda {
namespace emulation {
namespace {

// What the emulated "current stream" is: a token the launch log records.
cudaStream_t stream_token() { return reinterpret_cast<cudaStream_t>(std::uintptr_t(0x5eed)); }

struct EmulatedRuntime {
  struct Guard {
    explicit Guard(const at::Device&) {}
  };
  static cudaStream_t stream() { return stream_token(); }
  static void check_launch() {}  // run_grid throws on a bad launch, as the launch check would
};

// Signalling NaNs of each width: arithmetic only ever yields quiet NaNs.
void fill_unwritten(void* p, int64_t count, size_t size) {
  auto fill = [&](auto pattern) {
    auto* q = static_cast<decltype(pattern)*>(p);
    for (int64_t i = 0; i < count; ++i) q[i] = pattern;
  };
  if (size == 2) fill(uint16_t(0x7DA5));  // a signalling NaN in float16, and in bfloat16
  if (size == 4) fill(uint32_t(0x7FA5A5A5u));
  if (size == 8) fill(uint64_t(0x7FF4A5A5A5A5A5A5ull));
}

int64_t count_unwritten(const void* p, int64_t count, size_t size) {
  auto tally = [&](auto pattern) {
    const auto* q = static_cast<const decltype(pattern)*>(p);
    int64_t n = 0;
    for (int64_t i = 0; i < count; ++i) n += q[i] == pattern;
    return n;
  };
  if (size == 2) return tally(uint16_t(0x7DA5));
  if (size == 4) return tally(uint32_t(0x7FA5A5A5u));
  return tally(uint64_t(0x7FF4A5A5A5A5A5A5ull));
}

struct Buffer {
  const char* name;
  void* data;
  int64_t count;
  size_t size;
};

bool whole_grid() {
  std::lock_guard<std::mutex> lock(state().mutex);
  return state().block_subset.empty();
}

template <typename Launch>
void run_checked(std::initializer_list<Buffer> outputs, Launch launch) {
  const bool check = whole_grid();  // a block subset writes only its own part
  if (check) {
    for (const Buffer& b : outputs)
      if (b.data) fill_unwritten(b.data, b.count, b.size);
  }
  launch();
  if (check) {
    for (const Buffer& b : outputs) {
      if (!b.data) continue;
      const int64_t missed = count_unwritten(b.data, b.count, b.size);
      TORCH_CHECK(missed == 0, "CUDA emulation: the kernel left ", missed, " of ", b.count,
                  " elements of ", b.name, " unwritten");
    }
  }
}

size_t storage_size(at::ScalarType t) { return at::elementSize(t); }
size_t math_size(at::ScalarType t) { return at::elementSize(acc_dtype(t)); }

struct EmulatedBackend {
  using Guard = EmulatedRuntime::Guard;
  using Kernels = CudaBackend<EmulatedRuntime>;

  static at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
    return Kernels::empty(sizes, options);
  }

  static void forward(const ForwardParams& p, at::ScalarType dtype, bool save) {
    const size_t s = storage_size(dtype);
    run_checked({{"spikes", p.spikes, p.T * p.N, s},
                 {"i_n", p.i_n, p.N, s},
                 {"h_n", p.h_n, p.N, s},
                 {"hs_n", p.hs_n, p.N, s},
                 {"checkpoints", save ? p.checkpoints : nullptr, num_checkpoints(p.T) * 3 * p.N,
                  math_size(dtype)}},
                [&] { Kernels::forward(p, dtype, save); });
  }

  static void backward(const BackwardParams& p, at::ScalarType dtype, bool detach, bool st) {
    const size_t s = storage_size(dtype);
    run_checked({{"grad_u", p.grad_u, p.T * p.N, s},
                 {"grad_i0", p.grad_i0, p.N, s},
                 {"grad_h0", p.grad_h0, p.N, s},
                 {"grad_hs0", p.grad_hs0, p.N, s},
                 {"grad_bias_partial", p.grad_bias_partial, p.N, math_size(dtype)},
                 {"grad_constants_partial", p.grad_constants_partial, kNumConstants * p.N,
                  math_size(dtype)}},
                [&] { Kernels::backward(p, dtype, detach, st); });
  }
};

}  // namespace

// Writes each thread's (block, thread) position at its linear index: lets the tests check the
// emulated grid walk and the launch checks with any configuration.
__global__ void position_probe_kernel(int64_t* out) {
  const int64_t block =
      blockIdx.x + int64_t(gridDim.x) * (blockIdx.y + int64_t(gridDim.y) * blockIdx.z);
  const int64_t threads = int64_t(blockDim.x) * blockDim.y * blockDim.z;
  const int64_t thread =
      threadIdx.x + int64_t(blockDim.x) * (threadIdx.y + int64_t(blockDim.y) * threadIdx.z);
  out[block * threads + thread] = block * 100000 + thread;
}

}  // namespace emulation
}  // namespace cuda
}  // namespace srcext

TORCH_LIBRARY(srcext_cuda_emulation, m) {
  m.def(srcext::kForwardSchema);
  m.def(srcext::kBackwardSchema);
}

namespace {
struct EmulationOps {
  static constexpr const char* kForward = "srcext_cuda_emulation::src_forward";
  static constexpr const char* kBackward = "srcext_cuda_emulation::src_backward";
};
}  // namespace

TORCH_LIBRARY_IMPL(srcext_cuda_emulation, Autograd, m) {
  srcext::register_autograd<EmulationOps>(m);
}

TORCH_LIBRARY_IMPL(srcext_cuda_emulation, CPU, m) {
  using srcext::cuda::emulation::EmulatedBackend;
  m.impl("src_forward", &srcext::src_forward_op<EmulatedBackend>);
  m.impl("src_backward", &srcext::src_backward_op<EmulatedBackend>);
}

namespace {

pybind11::list launches() {
  using srcext::cuda::emulation::state;
  std::lock_guard<std::mutex> lock(state().mutex);
  pybind11::list out;
  for (const auto& r : state().log) {
    pybind11::dict d;
    d["kernel"] = r.kernel;
    d["grid"] = pybind11::make_tuple(r.grid.x, r.grid.y, r.grid.z);
    d["block"] = pybind11::make_tuple(r.block.x, r.block.y, r.block.z);
    d["stream"] = r.stream;
    d["blocks_run"] = r.blocks_run;
    out.append(d);
  }
  return out;
}

void clear_launches() {
  using srcext::cuda::emulation::state;
  std::lock_guard<std::mutex> lock(state().mutex);
  state().log.clear();
}

void set_block_subset(const std::vector<int64_t>& blocks) {
  using srcext::cuda::emulation::state;
  std::lock_guard<std::mutex> lock(state().mutex);
  state().block_subset = blocks;
}

}  // namespace

at::Tensor probe_launch(std::tuple<unsigned, unsigned, unsigned> g,
                        std::tuple<unsigned, unsigned, unsigned> b) {
  using namespace srcext::cuda;
  const dim3 grid(std::get<0>(g), std::get<1>(g), std::get<2>(g));
  const dim3 block(std::get<0>(b), std::get<1>(b), std::get<2>(b));
  const int64_t n = int64_t(grid.x) * grid.y * grid.z * block.x * block.y * block.z;
  at::Tensor out = at::full({n}, -1, at::kLong);
  launch_kernel<&emulation::position_probe_kernel>(grid, block, emulation::stream_token(),
                                                   out.data_ptr<int64_t>());
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("probe_launch", &probe_launch,
        "launch a kernel that writes block * 100000 + thread at each thread's linear index");
  m.doc() = "srcext's CUDA kernels run on the host (test-only)";
  m.def("launches", &launches, "every launch since the last clear_launches()");
  m.def("clear_launches", &clear_launches);
  m.def("set_block_subset", &set_block_subset,
        "run only these linear block indices of each launch (empty: all)");
  m.def("stream_token",
        [] { return reinterpret_cast<std::uintptr_t>(srcext::cuda::emulation::stream_token()); });
  m.attr("threads_per_block") = srcext::cuda::kThreads;
  m.def(
      "set_approx_error",
      [](int mode) {
        TORCH_CHECK(mode >= -1 && mode <= 2, "set_approx_error: mode is -1, 0, 1 or 2");
        srcext::cuda::emulation::approx_error_mode.store(mode);
      },
      "error model of the device's approximate instructions (cuda_runtime.h): 0 none, "
      "+1 / -1 the documented bound with that sign, 2 the bound with a hashed sign");
}
