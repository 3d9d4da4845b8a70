// src_kernels.cuh — the CUDA kernels of the srcext ops: indexing, memory and launch only;
// the cell math is src_cell.h, shared with the CPU kernels.
//
// One thread per neuron (b, h) walks time. Per-step tensors are time-major (T, N), so at
// each step a warp reads and writes 32 consecutive values: every access is coalesced. The
// backward pass recomputes each chunk of kCheckpointInterval steps from its checkpoint into
// registers (the chunk loops are fully unrolled so the arrays stay in registers, and the
// arrays a flag combination does not read are removed by the compiler), then walks it back.
#pragma once

#include <cuda_runtime.h>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "../src_params.h"
#include "../src_switch.h"
#include "src_cuda_launch.h"

namespace srcext {
namespace cuda {

constexpr int kChunk = static_cast<int>(kCheckpointInterval);

// With lengths (kLengths), the steps neuron n runs: lengths[n / H] clamped to [0, T], so that
// no value can index out of bounds. Past them its spikes and grad_u are 0 and its state is
// frozen (see csrc/src_params.h). Without, kLengths is false and the kernels are as they were
// (a per-thread trip count costs registers, hence the template flag).
__device__ __forceinline__ int64_t steps_of(const int64_t* lengths, int64_t n, int64_t H,
                                            int64_t T) {
  const int64_t len = lengths[n / H];
  return len < 0 ? 0 : (len > T ? T : len);
}

template <typename Acc, typename scalar_t>
__device__ __forceinline__ Acc load(const scalar_t* p, int64_t idx) {
  return static_cast<Acc>(p[idx]);
}

template <typename scalar_t, typename Acc, bool kSave, bool kLengths>
__global__ void __launch_bounds__(kThreads)
src_forward_kernel(const ForwardParams p) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= p.N) return;
  // T: this neuron's own number of steps (p.T without lengths).
  const int64_t N = p.N, T = kLengths ? steps_of(p.lengths, n, p.H, p.T) : p.T;
  const auto k = CellConstants<Acc>::from(p.k);
  const scalar_t* u = static_cast<const scalar_t*>(p.u);
  scalar_t* spikes = static_cast<scalar_t*>(p.spikes);
  Acc* checkpoints = static_cast<Acc*>(p.checkpoints);
  const Acc bias = load<Acc>(static_cast<const scalar_t*>(p.bias), n % p.H);
  CellState<Acc> s{load<Acc>(static_cast<const scalar_t*>(p.i0), n),
                   load<Acc>(static_cast<const scalar_t*>(p.h0), n),
                   load<Acc>(static_cast<const scalar_t*>(p.hs0), n)};

  Acc drive = T > 0 ? load<Acc>(u, n) : Acc(0);
  for (int64_t t = 0; t < T; ++t) {
    // Issue the next step's load before this step's math (it does not depend on it).
    const Acc next = t + 1 < T ? load<Acc>(u, (t + 1) * N + n) : Acc(0);
    if (kSave && t % kChunk == 0) {
      Acc* ck = checkpoints + (t / kChunk) * 3 * N + n;
      ck[0] = s.i;
      ck[N] = s.h;
      ck[2 * N] = s.hs;
    }
    cell_step(k, drive, bias, s);
    spikes[t * N + n] = static_cast<scalar_t>(spike(s.h));
    drive = next;
  }
  if (kLengths) {
    // Past its length (T here): no spikes; the remaining checkpoints hold the frozen state.
    for (int64_t t = T; t < p.T; ++t) {
      if (kSave && t % kChunk == 0) {
        Acc* ck = checkpoints + (t / kChunk) * 3 * N + n;
        ck[0] = s.i;
        ck[N] = s.h;
        ck[2 * N] = s.hs;
      }
      spikes[t * N + n] = static_cast<scalar_t>(Acc(0));
    }
  }
  static_cast<scalar_t*>(p.i_n)[n] = static_cast<scalar_t>(s.i);
  static_cast<scalar_t*>(p.h_n)[n] = static_cast<scalar_t>(s.h);
  static_cast<scalar_t*>(p.hs_n)[n] = static_cast<scalar_t>(s.hs);
}

template <typename scalar_t, typename Acc, bool kDetach, bool kStraightThrough, bool kLengths>
__global__ void __launch_bounds__(kThreads)
src_backward_kernel(const BackwardParams p) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= p.N) return;
  // T: this neuron's own length; the final state's gradients enter at its last step.
  const int64_t N = p.N, T = kLengths ? steps_of(p.lengths, n, p.H, p.T) : p.T;
  const auto k = CellConstants<Acc>::from(p.k);
  const scalar_t* u = static_cast<const scalar_t*>(p.u);
  const scalar_t* grad_spikes = static_cast<const scalar_t*>(p.grad_spikes);
  const Acc* checkpoints = static_cast<const Acc*>(p.checkpoints);
  scalar_t* grad_u = static_cast<scalar_t*>(p.grad_u);
  const Acc bias = load<Acc>(static_cast<const scalar_t*>(p.bias), n % p.H);
  CellGrad<Acc> g{load<Acc>(static_cast<const scalar_t*>(p.grad_h_n), n),
                  load<Acc>(static_cast<const scalar_t*>(p.grad_hs_n), n),
                  load<Acc>(static_cast<const scalar_t*>(p.grad_i_n), n)};
  Acc dbias = Acc(0);
  if (kLengths) {
    for (int64_t t = T; t < p.T; ++t) grad_u[t * N + n] = static_cast<scalar_t>(Acc(0));  // no step
  }

  for (int64_t c = num_checkpoints(T) - 1; c >= 0; --c) {
    const int64_t t0 = c * kChunk;
    const int len = static_cast<int>(T - t0 < kChunk ? T - t0 : kChunk);
    const Acc* ck = checkpoints + c * 3 * N + n;
    CellState<Acc> s{ck[0], ck[N], ck[2 * N]};
    Acc h_prev[kChunk], hs_prev[kChunk];
    StepTrace<Acc> trace[kChunk];
#pragma unroll
    for (int j = 0; j < kChunk; ++j) {
      if (j < len) {
        h_prev[j] = s.h;
        hs_prev[j] = s.hs;
        trace[j] = cell_step(k, load<Acc>(u, (t0 + j) * N + n), bias, s);
      }
    }
#pragma unroll
    for (int j = kChunk - 1; j >= 0; --j) {
      if (j < len) {
        const Acc gs = load<Acc>(grad_spikes, (t0 + j) * N + n);
        const Acc du = cell_step_backward<kDetach, kStraightThrough>(k, trace[j], h_prev[j],
                                                                     hs_prev[j], gs, g, dbias);
        grad_u[(t0 + j) * N + n] = static_cast<scalar_t>(du);
      }
    }
  }
  static_cast<scalar_t*>(p.grad_i0)[n] = static_cast<scalar_t>(g.di);
  static_cast<scalar_t*>(p.grad_h0)[n] = static_cast<scalar_t>(g.dh);
  static_cast<scalar_t*>(p.grad_hs0)[n] = static_cast<scalar_t>(g.dhs);
  static_cast<Acc*>(p.grad_bias_partial)[n] = dbias;
}

inline dim3 grid_for(int64_t N) {
  return dim3(static_cast<unsigned int>((N + kThreads - 1) / kThreads));
}

// Runtime flags become template switches here.
template <typename scalar_t, typename Acc>
void launch_forward(const ForwardParams& p, bool save, cudaStream_t stream) {
  SRC_BOOL_SWITCH(save, kSave, SRC_BOOL_SWITCH(p.lengths != nullptr, kLengths,
      src_forward_kernel<scalar_t, Acc, kSave, kLengths><<<grid_for(p.N), kThreads, 0, stream>>>(p)));
}

template <typename scalar_t, typename Acc>
void launch_backward(const BackwardParams& p, bool detach, bool straight_through,
                     cudaStream_t stream) {
  const dim3 grid = grid_for(p.N);
  SRC_BOOL_SWITCH(detach, kDetach, SRC_BOOL_SWITCH(straight_through, kStraightThrough,
      SRC_BOOL_SWITCH(p.lengths != nullptr, kLengths,
          src_backward_kernel<scalar_t, Acc, kDetach, kStraightThrough, kLengths>
              <<<grid, kThreads, 0, stream>>>(p))));
}

}  // namespace cuda
}  // namespace srcext

// One translation unit per storage dtype instantiates its launchers with this.
#define SRCEXT_CUDA_INSTANTIATE(NAME, scalar_t, Acc)                                           \
  namespace srcext {                                                                           \
  namespace cuda {                                                                             \
  void forward_##NAME(const ForwardParams& p, bool save, cudaStream_t stream) {                \
    launch_forward<scalar_t, Acc>(p, save, stream);                                            \
  }                                                                                            \
  void backward_##NAME(const BackwardParams& p, bool detach, bool st, cudaStream_t stream) {   \
    launch_backward<scalar_t, Acc>(p, detach, st, stream);                                     \
  }                                                                                            \
  }                                                                                            \
  }
