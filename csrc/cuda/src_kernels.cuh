// src_kernels.cuh — the CUDA kernels of the srcext ops: indexing, memory and launch only;
// the cell math is src_cell.h, shared with the CPU kernels.
//
// One thread per neuron (b, h) walks time. Per-step tensors are time-major (T, N), so at
// each step a warp reads and writes 32 consecutive values: every access is coalesced.
//
// Memory latency is hidden inside each thread, by loading ahead: at full bandwidth an H200
// needs ~3 MB of loads in flight (4.8 TB/s x ~600 ns), which the ~100-200k resident threads
// reach when each has its loads issued about four steps before their use (Little's law;
// benchmarks/GPU_NOTES.md has the numbers). The forward's streamed pointers are kernel
// arguments marked __restrict__, so that the compiler may move loads above the stores of
// earlier steps (pointers in the params struct, or local copies of them, do not carry that
// promise).
//
// The backward pass recomputes each chunk of kCheckpointInterval steps from its checkpoint
// into registers (the chunk loops are fully unrolled so the arrays stay in registers, and the
// arrays a flag combination does not read are removed by the compiler), then walks it back.
//
// Each thread's loop bound is T; a per-thread length would replace it without changing the
// structure.
#pragma once

#include <cuda_runtime.h>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

#include "../src_params.h"
#include "src_cuda_launch.h"
#include "src_launch_kernel.cuh"

namespace srcext {
namespace cuda {

constexpr int kChunk = static_cast<int>(kCheckpointInterval);
static_assert((kChunk & (kChunk - 1)) == 0, "the checkpoint test below is a bit mask");

// Loads in flight per thread. Forward: the drive of the next kForwardAhead steps, in a
// register ring (one register each).
constexpr int kForwardAhead = 4;
static_assert(kChunk % kForwardAhead == 0, "the forward's checkpoint falls on a ring start");

template <typename Acc, typename scalar_t>
__device__ __forceinline__ Acc load(const scalar_t* p, int64_t idx) {
  return static_cast<Acc>(p[idx]);
}

template <typename Acc>
__device__ __forceinline__ void store_checkpoint(Acc* ck, int64_t N, const CellState<Acc>& s) {
  ck[0] = s.i;
  ck[N] = s.h;
  ck[2 * N] = s.hs;
}

// The constants reach the kernels already in the precision of the math (converted once, on
// the host, by the launchers): a conversion from double inside the time loop costs an F2F per
// constant and step.
template <typename scalar_t, typename Acc, bool kSave>
__global__ void __launch_bounds__(kThreads)
src_forward_kernel(const ForwardParams p, const CellConstants<Acc> k,
                   const scalar_t* __restrict__ u, scalar_t* __restrict__ spikes,
                   Acc* __restrict__ checkpoints) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= p.N) return;
  const int64_t N = p.N, T = p.T;
  const Acc bias = load<Acc>(static_cast<const scalar_t*>(p.bias), n % p.H);
  CellState<Acc> s{load<Acc>(static_cast<const scalar_t*>(p.i0), n),
                   load<Acc>(static_cast<const scalar_t*>(p.h0), n),
                   load<Acc>(static_cast<const scalar_t*>(p.hs0), n)};
  u += n;
  spikes += n;
  Acc* ck = kSave ? checkpoints + n : nullptr;

  // ring[j] holds the drive of step t + j (raw storage: converted at its use, so that the
  // thread waits for a load only there).
  scalar_t ring[kForwardAhead];
#pragma unroll
  for (int j = 0; j < kForwardAhead; ++j) ring[j] = j < T ? u[j * N] : scalar_t(0);

  int64_t t = 0;
  // Steady state: kForwardAhead steps per iteration, each loading the drive kForwardAhead
  // steps ahead (always inside the sequence here, so unguarded).
  for (; t + 2 * kForwardAhead <= T; t += kForwardAhead) {
    if (kSave && (t & (kChunk - 1)) == 0) {
      store_checkpoint(ck, N, s);
      ck += 3 * N;
    }
#pragma unroll
    for (int j = 0; j < kForwardAhead; ++j) {
      const Acc drive = static_cast<Acc>(ring[j]);
      ring[j] = u[(t + j + kForwardAhead) * N];
      cell_step(k, drive, bias, s);
      spikes[(t + j) * N] = static_cast<scalar_t>(spike(s.h));
    }
  }
  // The last steps (fewer than 2 kForwardAhead): the ring drains.
  for (; t < T; ++t) {
    if (kSave && (t & (kChunk - 1)) == 0) {
      store_checkpoint(ck, N, s);
      ck += 3 * N;
    }
    const Acc drive = static_cast<Acc>(ring[0]);
#pragma unroll
    for (int j = 0; j + 1 < kForwardAhead; ++j) ring[j] = ring[j + 1];
    ring[kForwardAhead - 1] = t + kForwardAhead < T ? u[(t + kForwardAhead) * N] : scalar_t(0);
    cell_step(k, drive, bias, s);
    spikes[t * N] = static_cast<scalar_t>(spike(s.h));
  }
  static_cast<scalar_t*>(p.i_n)[n] = static_cast<scalar_t>(s.i);
  static_cast<scalar_t*>(p.h_n)[n] = static_cast<scalar_t>(s.h);
  static_cast<scalar_t*>(p.hs_n)[n] = static_cast<scalar_t>(s.hs);
}

template <typename scalar_t, typename Acc, bool kDetach, bool kStraightThrough>
__global__ void __launch_bounds__(kThreads)
src_backward_kernel(const BackwardParams p, const CellConstants<Acc> k) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= p.N) return;
  const int64_t N = p.N, T = p.T;
  const scalar_t* u = static_cast<const scalar_t*>(p.u);
  const scalar_t* grad_spikes = static_cast<const scalar_t*>(p.grad_spikes);
  const Acc* checkpoints = static_cast<const Acc*>(p.checkpoints);
  scalar_t* grad_u = static_cast<scalar_t*>(p.grad_u);
  const Acc bias = load<Acc>(static_cast<const scalar_t*>(p.bias), n % p.H);
  CellGrad<Acc> g{load<Acc>(static_cast<const scalar_t*>(p.grad_h_n), n),
                  load<Acc>(static_cast<const scalar_t*>(p.grad_hs_n), n),
                  load<Acc>(static_cast<const scalar_t*>(p.grad_i_n), n)};
  Acc dbias = Acc(0);

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

// Runtime flags become template switches here; the constants are converted to the math's
// precision here, once.
template <typename scalar_t, typename Acc>
void launch_forward(const ForwardParams& p, bool save, cudaStream_t stream) {
  const dim3 grid = grid_for(p.N);
  const auto k = CellConstants<Acc>::from(p.k);
  const auto* u = static_cast<const scalar_t*>(p.u);
  auto* spikes = static_cast<scalar_t*>(p.spikes);
  auto* checkpoints = static_cast<Acc*>(p.checkpoints);
  if (save) {
    launch_kernel<&src_forward_kernel<scalar_t, Acc, true>>(grid, kThreads, stream, p, k, u,
                                                             spikes, checkpoints);
  } else {
    launch_kernel<&src_forward_kernel<scalar_t, Acc, false>>(grid, kThreads, stream, p, k, u,
                                                              spikes, checkpoints);
  }
}

template <typename scalar_t, typename Acc>
void launch_backward(const BackwardParams& p, bool detach, bool straight_through,
                     cudaStream_t stream) {
  const dim3 grid = grid_for(p.N);
  const auto k = CellConstants<Acc>::from(p.k);
  if (detach && straight_through) {
    launch_kernel<&src_backward_kernel<scalar_t, Acc, true, true>>(grid, kThreads, stream, p, k);
  } else if (detach) {
    launch_kernel<&src_backward_kernel<scalar_t, Acc, true, false>>(grid, kThreads, stream, p, k);
  } else if (straight_through) {
    launch_kernel<&src_backward_kernel<scalar_t, Acc, false, true>>(grid, kThreads, stream, p, k);
  } else {
    launch_kernel<&src_backward_kernel<scalar_t, Acc, false, false>>(grid, kThreads, stream, p, k);
  }
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
