// src_events_emulation.cpp — the CUDA kernels of the event-driven projection
// (csrc/events/cuda/src_events_cuda_types.cu) compiled by the host compiler and run on the CPU, as
// src_cuda_emulation.cpp does for the recurrence. Test-only: tests/events_cuda_emulation.py
// builds it. The ops are registered for CPU tensors under the namespace
// srcext_events_emulation, with the schemas of the real ones.
//
// On top of what the GPU does, each kernel's output buffer is first filled with a
// signalling-NaN pattern that no arithmetic produces, and afterwards checked: a kernel must
// write every element it owns.
#include <torch/extension.h>

#include <cstring>

#include "cuda_runtime.h"
#include "events/src_events_schemas.h"
#include "events/cuda/src_events_cuda_backend.h"
#include "events/cuda/src_events_cuda_types.cu"

namespace srcext {
namespace cuda {
namespace emulation {
namespace {

cudaStream_t events_stream_token() {
  return reinterpret_cast<cudaStream_t>(std::uintptr_t(0xe7e7));
}

struct EmulatedRuntime {
  struct Guard {
    explicit Guard(const at::Device&) {}
  };
  static cudaStream_t stream() { return events_stream_token(); }
  static void check_launch() {}  // run_grid throws on a bad launch, as the launch check would
  static bool capturing() { return false; }  // no CUDA graphs on the host
};

using Kernels = CudaEventsBackend<EmulatedRuntime>;

// The pattern as bytes of each width: a signalling NaN of float16 / bfloat16, float, double
// (arithmetic only ever yields quiet NaNs); for int64 outputs a value no index takes.
void fill_pattern(void* p, int64_t count, size_t size) {
  auto fill = [&](auto pattern) {
    auto* q = static_cast<decltype(pattern)*>(p);
    for (int64_t i = 0; i < count; ++i) q[i] = pattern;
  };
  if (size == 2) fill(uint16_t(0x7DA5));
  if (size == 4) fill(uint32_t(0x7FA5A5A5u));
  if (size == 8) fill(uint64_t(0x7FF4A5A5A5A5A5A5ull));
}

void check_written(const void* p, int64_t count, size_t size, const char* name) {
  auto tally = [&](auto pattern) {
    const auto* q = static_cast<const decltype(pattern)*>(p);
    int64_t n = 0;
    for (int64_t i = 0; i < count; ++i) n += q[i] == pattern;
    return n;
  };
  const int64_t missed = size == 2   ? tally(uint16_t(0x7DA5))
                         : size == 4 ? tally(uint32_t(0x7FA5A5A5u))
                                     : tally(uint64_t(0x7FF4A5A5A5A5A5A5ull));
  TORCH_CHECK(missed == 0, "CUDA emulation: the kernel left ", missed, " of ", count,
              " elements of ", name, " unwritten");
}

size_t storage_size(at::ScalarType t) { return at::elementSize(t); }

struct EmulatedEventsBackend {
  using Guard = EmulatedRuntime::Guard;

  static EventList build(const at::Tensor& s, int64_t max_nnz) {
    EventList e = Kernels::build(s, max_nnz);
    // Run the fill pass once more over pattern-filled outputs: it must write every event.
    if (e.built && e.nnz > 0) {
      const size_t item = storage_size(s.scalar_type());
      fill_pattern(e.col.data_ptr(), e.nnz, 8);
      fill_pattern(e.val.data_ptr(), e.nnz, item);
      EventsBuildParams p{};
      p.R = s.size(0);
      p.F = s.size(1);
      p.s = s.const_data_ptr();
      p.row_ptr = e.row_ptr.data_ptr<int64_t>();
      p.col = e.col.data_ptr<int64_t>();
      p.val = e.val.data_ptr();
      SRC_DTYPE_SWITCH(s.scalar_type(), scalar_t,
                       launch_event_fill<scalar_t>(p, events_stream_token()));
      check_written(e.col.data_ptr(), e.nnz, 8, "col");
      check_written(e.val.data_ptr(), e.nnz, item, "val");
    }
    return e;
  }

  static void matmul(const EventMatmulParams& p, at::ScalarType dtype) {
    const size_t item = storage_size(dtype);
    fill_pattern(p.u, p.R * p.H, item);
    Kernels::matmul(p, dtype);
    check_written(p.u, p.R * p.H, item, "u");
  }

  static void weight_grad(const at::Tensor& row_ptr, const at::Tensor& col, const at::Tensor& val,
                          const at::Tensor& grad_u, at::Tensor& grad_wt) {
    fill_pattern(grad_wt.data_ptr(), grad_wt.numel(), grad_wt.element_size());
    Kernels::weight_grad(row_ptr, col, val, grad_u, grad_wt);
    check_written(grad_wt.data_ptr(), grad_wt.numel(), grad_wt.element_size(), "grad_wt");
  }
};

}  // namespace
}  // namespace emulation
}  // namespace cuda
}  // namespace srcext

TORCH_LIBRARY(srcext_events_emulation, m) {
  m.def(srcext::kEventsSchema);
  m.def(srcext::kEventMatmulSchema);
  m.def(srcext::kEventWeightGradSchema);
  m.def(srcext::kProjectionSchema);
  m.def(srcext::kProjectionWeightGradSchema);
}

TORCH_LIBRARY_IMPL(srcext_events_emulation, CPU, m) {
  using B = srcext::cuda::emulation::EmulatedEventsBackend;
  m.impl("src_events", &srcext::src_events_op<B>);
  m.impl("src_event_matmul", &srcext::src_event_matmul_op<B>);
  m.impl("src_event_weight_grad", &srcext::src_event_weight_grad_op<B>);
  m.impl("src_projection", &srcext::src_projection_op<B>);
  m.impl("src_projection_weight_grad", &srcext::src_projection_weight_grad_op<B>);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "srcext's event-projection CUDA kernels run on the host (test-only)";
  m.def(
      "launches",
      [] {
        using srcext::cuda::emulation::state;
        std::lock_guard<std::mutex> lock(state().mutex);
        pybind11::list out;
        for (const auto& r : state().log) {
          pybind11::dict d;
          d["kernel"] = r.kernel;
          d["grid"] = pybind11::make_tuple(r.grid.x, r.grid.y, r.grid.z);
          d["block"] = pybind11::make_tuple(r.block.x, r.block.y, r.block.z);
          d["stream"] = r.stream;
          out.append(d);
        }
        return out;
      },
      "every launch since the last clear_launches()");
  m.def("clear_launches", [] {
    using srcext::cuda::emulation::state;
    std::lock_guard<std::mutex> lock(state().mutex);
    state().log.clear();
  });
  m.attr("threads_per_block") = srcext::cuda::kEventThreads;
}
