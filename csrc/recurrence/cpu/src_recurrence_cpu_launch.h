// src_recurrence_cpu_launch.h — the CPU kernels' entry points (defined in src_recurrence_cpu_<dtype>.cpp), as
// the backend in src_recurrence_cpu.cpp calls them: each walks blocks [b, e) of kLanes neurons.
#pragma once

#include <cstdint>

#include "../src_recurrence_params.h"

namespace srcext {
namespace cpu {

// Neurons per block: 4 AVX-512 / 8 AVX2 vectors of float. Here, not in
// src_recurrence_cpu_kernels.h, so that the host code that counts the blocks
// (src_recurrence_cpu.cpp) uses the same number as the kernels.
constexpr int kLanes = 64;

// Each walks blocks [b, e) of kLanes neurons, for one storage type, with or without lengths,
// with per-layer or per-neuron constants (src_switch.h picks them).
template <typename scalar_t, bool kLengths, bool kPerNeuron>
void forward_entry(const ForwardParams& p, bool save, int64_t b, int64_t e);
template <typename scalar_t, bool kLengths, bool kPerNeuron>
void backward_entry(const BackwardParams& p, bool detach, bool st, int64_t b, int64_t e);

}  // namespace cpu
}  // namespace srcext
