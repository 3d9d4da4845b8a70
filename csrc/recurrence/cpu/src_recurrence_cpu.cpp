// src_recurrence_cpu.cpp — the CPU backend of the srcext ops (the part
// csrc/recurrence/src_recurrence_ops.h asks of a backend): picks the entry point for the dtype,
// lengths and constants of a call (src_recurrence_cpu_launch.h) and runs it over the blocks of
// neurons on ATen's thread pool. The kernels themselves: src_recurrence_cpu_kernels.h, compiled
// once per storage dtype in src_recurrence_cpu_<dtype>.cpp.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../src_recurrence_ops.h"
#include "../../common/src_switch.h"
#include "src_cpu_buffers.h"
#include "src_recurrence_cpu_launch.h"

namespace srcext {
namespace cpu {
namespace {

int64_t num_blocks(int64_t N) { return (N + kLanes - 1) / kLanes; }

struct CpuBackend {
  struct Guard {
    explicit Guard(const at::Device&) {}
  };

  static at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
    return empty_cached(sizes, options);
  }

  static void forward(const ForwardParams& p, at::ScalarType dtype, bool save) {
    void (*fn)(const ForwardParams&, bool, int64_t, int64_t) = nullptr;
    SRC_DTYPE_SWITCH(
        dtype, scalar_t,
        SRC_BOOL_SWITCH(p.lengths != nullptr, kLengths,
                        SRC_BOOL_SWITCH(p.k.per_neuron, kPerNeuron,
                                        fn = &forward_entry<scalar_t, kLengths, kPerNeuron>)));
    at::parallel_for(0, num_blocks(p.N), 1, [&](int64_t b, int64_t e) { fn(p, save, b, e); });
  }

  static void backward(const BackwardParams& p, at::ScalarType dtype, bool detach, bool st) {
    void (*fn)(const BackwardParams&, bool, bool, int64_t, int64_t) = nullptr;
    SRC_DTYPE_SWITCH(
        dtype, scalar_t,
        SRC_BOOL_SWITCH(p.lengths != nullptr, kLengths,
                        SRC_BOOL_SWITCH(p.k.per_neuron, kPerNeuron,
                                        fn = &backward_entry<scalar_t, kLengths, kPerNeuron>)));
    at::parallel_for(0, num_blocks(p.N), 1, [&](int64_t b, int64_t e) { fn(p, detach, st, b, e); });
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(srcext, CPU, m) {
  m.impl("src_forward", &src_forward_op<CpuBackend>);
  m.impl("src_backward", &src_backward_op<CpuBackend>);
}

}  // namespace cpu
}  // namespace srcext
