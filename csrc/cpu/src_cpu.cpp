// src_cpu.cpp — the CPU backend of the srcext ops (the part csrc/src_ops.h asks of a backend):
// picks the entry point for the dtype, lengths and constants of a call (src_cpu_launch.h) and
// runs it over the blocks of neurons on ATen's thread pool. The kernels themselves:
// src_cpu_kernels.h, compiled once per storage dtype in src_cpu_<dtype>.cpp.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../src_ops.h"
#include "src_cpu_buffers.h"
#include "src_cpu_launch.h"

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
    const bool lengths = p.lengths != nullptr, dynamics = p.k.per_neuron;
    const auto fn =
        dynamics
            ? (lengths
                   ? kernel_for(dtype, &forward_f32_lengths_dynamics, &forward_f64_lengths_dynamics,
                                &forward_bf16_lengths_dynamics, &forward_f16_lengths_dynamics)
                   : kernel_for(dtype, &forward_f32_dynamics, &forward_f64_dynamics,
                                &forward_bf16_dynamics, &forward_f16_dynamics))
            : (lengths
                   ? kernel_for(dtype, &forward_f32_lengths, &forward_f64_lengths,
                                &forward_bf16_lengths, &forward_f16_lengths)
                   : kernel_for(dtype, &forward_f32, &forward_f64, &forward_bf16, &forward_f16));
    at::parallel_for(0, num_blocks(p.N), 1, [&](int64_t b, int64_t e) { fn(p, save, b, e); });
  }

  static void backward(const BackwardParams& p, at::ScalarType dtype, bool detach, bool st) {
    const bool lengths = p.lengths != nullptr, dynamics = p.k.per_neuron;
    const auto fn =
        dynamics
            ? (lengths ? kernel_for(dtype, &backward_f32_lengths_dynamics,
                                    &backward_f64_lengths_dynamics, &backward_bf16_lengths_dynamics,
                                    &backward_f16_lengths_dynamics)
                       : kernel_for(dtype, &backward_f32_dynamics, &backward_f64_dynamics,
                                    &backward_bf16_dynamics, &backward_f16_dynamics))
            : (lengths ? kernel_for(dtype, &backward_f32_lengths, &backward_f64_lengths,
                                    &backward_bf16_lengths, &backward_f16_lengths)
                       : kernel_for(dtype, &backward_f32, &backward_f64, &backward_bf16,
                                    &backward_f16));
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
