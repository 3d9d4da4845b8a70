// src_recurrence_params.h — the plain parameter structs the op wrappers hand to the kernels.
//
// Layout: every per-step tensor is time-major and contiguous, (T, B, H), seen by the
// kernels as (T, N) with N = B * H neurons; each state is (B, H) = (N,). Pointers are
// untyped here; a kernel instantiated for storage type `scalar_t` (and math type Acc)
// casts them. The saved trace and checkpoints are always in Acc.
//
// Variable lengths: when `lengths` is set, sample b = n / H runs only steps
// [0, lengths[b]) (values clamped to [0, T] by the kernels, so none can index out of bounds;
// the op checks them where that needs no device sync). Past its length a neuron's spikes
// and grad_u are 0, its state is frozen (the checkpoints there hold the frozen state), and
// the final state and its gradient belong to its last step.
#pragma once

#include <cstdint>

#include "../common/src_cell.h"
#include "../common/src_constants.h"

namespace srcext {

// The state (i, h, hs) is checkpointed before every kCheckpointInterval-th step; the backward pass
// recomputes each chunk of steps from its checkpoint and the drive u, which autograd keeps anyway.
// Saved memory per neuron-step: u (4 bytes in float32) plus 3 sizeof(Acc) / kCheckpointInterval
// (0.75 bytes). srcext/ops/recurrence.py holds the same number for the fake (meta) implementation.
constexpr int64_t kCheckpointInterval = 16;

SRC_HD int64_t num_checkpoints(int64_t T) {
  return (T + kCheckpointInterval - 1) / kCheckpointInterval;
}

// The cell constants (src_constants.h), in Acc: constant j of neuron n is
// constants[j * stride_k + (n % H) * stride_h]. per_neuron false: one value per layer, in host
// memory, read once per launch; true: in the kernels' memory, read per neuron before the time
// loop. Per-layer constants are read per neuron too, through stride_h 0, when they live on a
// GPU (reading them on the host would need a device sync) and when their gradients are
// wanted (grad_constants_partial), which the kernels compute only in their per-neuron form.
struct ConstantsRef {
  const void* data;
  int64_t stride_k, stride_h;
  bool per_neuron;
};

struct ForwardParams {
  int64_t T, N, H;
  ConstantsRef k;
  const void* u;       // (T, N)   drive W_s s_in
  const void* bias;    // (H,)     effective bias of neuron n is bias[n % H]
  const void* i0;      // (N,)     initial state
  const void* h0;
  const void* hs0;
  void* spikes;        // (T, N)   output max(h, output_floor): relu(h), or h itself
  float output_floor;  // 0 (spikes) or -inf (the voltage h); see emitted() in src_cell.h
  void* i_n;           // (N,)     final state
  void* h_n;
  void* hs_n;
  void*
      checkpoints;  // (num_checkpoints(T), 3, N) Acc, (i, h, hs) before step c*K; null in inference
  const int64_t* lengths;  // (B,) steps of each sample, or null: all run T steps
};

struct BackwardParams {
  int64_t T, N, H;
  ConstantsRef k;
  const void* grad_spikes;  // (T, B, H), read through its strides (below): an upstream gradient
  // that is broadcast (stride 0) or transposed is not copied
  int64_t grad_spikes_stride_t, grad_spikes_stride_b, grad_spikes_stride_h;  // in elements
  const void* grad_i_n;  // (N,)
  const void* grad_h_n;
  const void* grad_hs_n;
  const void* u;  // (T, N)   the forward's drive
  const void* bias;  // (H,)
  const void* checkpoints;  // (num_checkpoints(T), 3, N) Acc
  void* grad_u;  // (T, N)
  void* grad_bias_partial;  // (N,) Acc, per-neuron sums over time; the op reduces over B
  void* grad_constants_partial;  // (K, N) Acc, per-neuron sums over time, or null: no
  // gradient of the constants wanted; the op reduces it
  void* grad_i0;  // (N,)
  void* grad_h0;
  void* grad_hs0;
  const int64_t* lengths;  // (B,) or null, as in ForwardParams
};

}  // namespace srcext

namespace srcext {

// The constants of neuron n (per neuron) from a ConstantsRef whose data the caller may read.
template <typename Acc>
SRC_HD CellConstants<Acc> constants_of(const ConstantsRef& k, int64_t n, int64_t H) {
  return CellConstants<Acc>::from(static_cast<const Acc*>(k.data) + (n % H) * k.stride_h,
                                  k.stride_k);
}

}  // namespace srcext
