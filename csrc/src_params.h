// src_params.h — the plain parameter structs the op wrappers hand to the kernels.
//
// Layout: every per-step tensor is time-major and contiguous, (T, B, H), seen by the
// kernels as (T, N) with N = B * H neurons; each state is (B, H) = (N,). Pointers are
// untyped here; a kernel instantiated for storage type `scalar_t` (and math type Acc)
// casts them. The saved trace and checkpoints are always in Acc.
#pragma once

#include <cstdint>

#include "src_cell.h"

namespace srcext {

// (h, hs) are checkpointed before every kCheckpointInterval-th step; the backward pass
// recomputes each chunk of steps from its checkpoint. Saved memory per neuron-step:
// sizeof(Acc) for i[t] plus 2 sizeof(Acc) / kCheckpointInterval (4.5 bytes in float32).
// srcext/ops.py holds the same number for the fake (meta) implementation.
constexpr int64_t kCheckpointInterval = 16;

SRC_HD int64_t num_checkpoints(int64_t T) {
  return (T + kCheckpointInterval - 1) / kCheckpointInterval;
}

struct ForwardParams {
  int64_t T, N, H;
  SRCConstants k;
  const void* u;       // (T, N)   drive W_s s_in
  const void* bias;    // (H,)     effective bias of neuron n is bias[n % H]
  const void* i0;      // (N,)     initial state
  const void* h0;
  const void* hs0;
  void* spikes;        // (T, N)   output relu(h)
  void* i_n;           // (N,)     final state
  void* h_n;
  void* hs_n;
  void* i_trace;       // (T, N)   Acc, i[t]; null in inference
  void* checkpoints;   // (num_checkpoints(T), 2, N) Acc, (h, hs) before step c*K; null in inference
};

struct BackwardParams {
  int64_t T, N, H;
  SRCConstants k;
  const void* grad_spikes;  // (T, N)
  const void* grad_i_n;     // (N,)
  const void* grad_h_n;
  const void* grad_hs_n;
  const void* bias;         // (H,)
  const void* i_trace;      // (T, N) Acc
  const void* checkpoints;  // (num_checkpoints(T), 2, N) Acc
  void* grad_u;             // (T, N)
  void* grad_bias_partial;  // (N,) Acc, per-neuron sums over time; the op reduces over B
  void* grad_i0;            // (N,)
  void* grad_h0;
  void* grad_hs0;
};

}  // namespace srcext
