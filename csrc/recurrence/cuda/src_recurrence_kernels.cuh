// src_recurrence_kernels.cuh — the CUDA kernels of the srcext ops: indexing, memory and launch only;
// the cell math is src_cell.h, shared with the CPU kernels.
//
// A thread walks time for its neurons (b, h): two adjacent ones where it can (its lanes,
// src_lanes.cuh: the forward, and the detached backward of 16-bit storage), else one.
// Per-step tensors are time-major (T, N), so at each step a warp reads and writes 32
// consecutive values (or pairs): every access is coalesced.
//
// Memory latency is hidden inside each thread, by loading ahead: at full bandwidth an H200
// needs ~3 MB of loads in flight (4.8 TB/s x ~600 ns), which the ~100-200k resident threads
// reach when each has its loads issued about four steps before their use (Little's law;
// benchmarks/GPU_NOTES.md has the numbers). The streamed pointers are kernel arguments
// marked __restrict__, so that the compiler may move loads above the stores of earlier steps
// (pointers in the params struct, or local copies of them, do not carry that promise).
//
// The backward pass recomputes each chunk of kCheckpointInterval steps from its checkpoint,
// keeping each step's Jacobian (src_cell.h: StepJacobian) in registers (the chunk loops are
// fully unrolled so the arrays stay in registers; the fields a flag combination does not
// read are removed by the compiler), then walks the chunk back. With detached states it keeps
// each step's dL/du term instead (detached_chunk).
//
// Variable lengths (kLengths): each thread's loop bound is its sample's own length, which
// also sets the number and length of the backward's chunks; past it the thread writes zero
// spikes / grad_u and (forward) its frozen state into the remaining checkpoints.
#pragma once

#include <cuda_runtime.h>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <type_traits>

#include "../src_recurrence_params.h"
#include "../../common/src_switch.h"
#include "src_recurrence_cuda_launch.h"
#include "../../common/src_launch_kernel.cuh"
#include "src_lanes.cuh"
#include "src_prefetch.cuh"

namespace srcext {
namespace cuda {

constexpr int kChunk = static_cast<int>(kCheckpointInterval);
static_assert((kChunk & (kChunk - 1)) == 0, "the checkpoint test below is a bit mask");

// Loads in flight per thread (benchmarks/GPU_NOTES.md: the depths tried, their registers and
// steps ahead). Forward: a register ring of the drives of the next kForwardRing steps, one
// register (one step of a thread's lanes) each, and as many steps per loop iteration: step j
// of an iteration uses slot j and refills it for step j of the next, with no register moves (a
// ring shifted by half its depth each iteration cost one move a step). Wherever ptxas places a
// load in its iteration, it stays at least the rest of the iteration ahead. Two lanes move
// twice the bytes a step and run in one wave at the H200 size, so Little's law asks fewer
// steps of them: 8 (one lane: 16; with 8 its median lead fell to 0.75-0.9 of Little's law).
template <int L>
constexpr int kForwardRing = L == 1 ? 16 : 8;
static_assert(kChunk % kForwardRing<1> == 0 && kChunk % kForwardRing<2> == 0,
              "the forward's checkpoint falls on an iteration start");
// Backward with detached states (detached_chunk): one register FIFO per load stream (u,
// grad_spikes), kDetachedAhead<L> steps of the recompute ahead; the loads of a chunk's last
// steps fetch the next chunk's first, a whole walk ahead. One lane: 8 (a whole chunk, 16,
// spilled at 128 registers beside the chunk's q, and ptxas copied every slot back at the
// loop's end; 4 fell to 0.8 of Little's law). Two lanes, twice the bytes a step: 4 (8
// spilled 16 bytes).
template <int L>
constexpr int kDetachedAhead = L == 2 ? 4 : 8;
static_assert(kChunk % kDetachedAhead<1> == 0 && kChunk % kDetachedAhead<2> == 0,
              "a chunk's steps fill the FIFOs a whole number of times");
// Exact BPTT keeps 4 Jacobian values per step. A whole chunk's (64 registers) left no room
// at the 128-register cap: the per-neuron and +lengths variants spilled 16-200 bytes and the
// FIFO below could not deepen. So float math recomputes a chunk in two halves
// (backward_chunk_exact): the first half runs once more (8 more cell steps a chunk, ~13 more
// instructions a step) and only a half's Jacobians (32 registers) are held. double keeps the
// whole chunk: it has no register cap to meet (one block), and its software exp would make
// the extra half cost ~40 % more instructions.
template <typename Acc>
constexpr int kExactSplit = sizeof(Acc) == 8 ? 0 : kChunk / 2;
// Its loads: one FIFO over the chunk's combined stream (two per-stream FIFOs spilled before
// the split): each step of a chunk is visited twice (the recompute loads u, the walk loads
// grad_spikes), so A loads cover A / 2 steps. 8 for 4-byte storage, 16 for 2-byte (whose
// steps carry half the bytes, so Little's law asks twice the steps ahead; the registers
// the split freed pay for it), 4 for double. Its depth divides a chunk's 2 kChunk loads,
// so every chunk starts at slot 0.
template <typename scalar_t>
constexpr int kBackwardAhead = sizeof(scalar_t) == 8 ? 4 : (sizeof(scalar_t) == 2 ? 16 : 8);
static_assert(2 * kChunk % kBackwardAhead<float> == 0 && 2 * kChunk % kBackwardAhead<double> == 0 &&
                  2 * kChunk % kBackwardAhead<c10::BFloat16> == 0,
              "a chunk's loads fill the FIFO a whole number of times");
// The backward's register budget: 2 blocks of kThreads per SM, i.e. at most 128 registers (the
// issue's limit) for float math. With this bound ptxas also issues the loads early instead of
// sinking them towards their use to save registers (without it the detached variants used
// 59-80 registers and had loads 0.1 steps ahead, 57-69 % of them after a store). double: no
// bound (its math needs ~200 registers).
template <typename Acc>
constexpr int kBackwardMinBlocks = sizeof(Acc) == 8 ? 1 : 2;
// Exact BPTT's kernels that also accumulate the constants' gradients keep 9 more sums and each
// step's inputs of them: at the 128-register cap they spill 0.8-1.1 kB per thread, so they
// take 1 block's budget (up to 255 registers). The detached ones add each step's share in the
// recompute and keep only i[t-1] for alpha's: they fit 128 without spills.
template <typename Acc, bool kConstGrad>
constexpr int kBackwardMinBlocksFor = kConstGrad ? 1 : kBackwardMinBlocks<Acc>;

// The steps neuron n runs: lengths[n / H] clamped to [0, T] (no value can index out of
// bounds), or all T without lengths. Past them its spikes and grad_u are 0 and its state
// is frozen (see csrc/recurrence/src_recurrence_params.h).
template <bool kLengths>
__device__ __forceinline__ int64_t steps_of(const int64_t* lengths, int64_t n, int64_t H,
                                            int64_t T) {
  if (!kLengths) return T;
  const int64_t len = lengths[n / H];
  return len < 0 ? 0 : (len > T ? T : len);
}

template <typename Acc, typename scalar_t>
__device__ __forceinline__ Acc load(const scalar_t* p, int64_t idx) {
  return static_cast<Acc>(p[idx]);
}

// The checkpoint of the chunk that starts at step t0 (a multiple of kChunk): its i, its h
// N further on, its hs 2 N further on.
template <typename Acc>
__device__ __forceinline__ const Acc* checkpoint_at(const Acc* checkpoints, int64_t t0, int64_t N) {
  return checkpoints + (t0 / kChunk) * 3 * N;
}

// Per layer (kPerNeuron false), the constants reach the kernels as a launch argument, ready in
// the precision of the math with the derived ones precomputed (by the launchers, once, on the
// host: a conversion inside the time loop would cost an F2F per constant and step). Per
// neuron, each thread builds its own from the constants tensor (p.k) before its time loop.
template <bool kPerNeuron, typename Acc>
__device__ __forceinline__ CellConstants<Acc> neuron_constants(const ConstantsRef& ref,
                                                               const CellConstants<Acc>& layer,
                                                               int64_t n, int64_t H) {
  if constexpr (kPerNeuron) {
    return constants_of<Acc>(ref, n, H);
  } else {
    return layer;
  }
}

// Neuron n's constants and its bias in the form cell_step takes (candidate_bias), made once
// before its time loop; Params: ForwardParams or BackwardParams.
template <bool kPerNeuron, typename scalar_t, typename Acc, typename Params>
__device__ __forceinline__ void neuron_setup(const Params& p, const CellConstants<Acc>& k_layer,
                                             int64_t n, CellConstants<Acc>& k,
                                             CandidateBias<Acc>& bias) {
  k = neuron_constants<kPerNeuron>(p.k, k_layer, n, p.H);
  bias = candidate_bias(k, load<Acc>(static_cast<const scalar_t*>(p.bias), n % p.H));
}

// Neuron n's gradients of the final state, where the backward's walk starts.
template <typename scalar_t, typename Acc>
__device__ __forceinline__ CellGrad<Acc> final_state_grads(const BackwardParams& p, int64_t n) {
  return {load<Acc>(static_cast<const scalar_t*>(p.grad_h_n), n),
          load<Acc>(static_cast<const scalar_t*>(p.grad_hs_n), n),
          load<Acc>(static_cast<const scalar_t*>(p.grad_i_n), n)};
}

// What the backward leaves of neuron n: the start state's gradients (g after the walk), and its
// partial sums of the bias's gradient and (kConstGrad) the constants', which the backend
// reduces over the batch.
template <bool kConstGrad, typename scalar_t, typename Acc>
__device__ __forceinline__ void store_neuron_grads(const BackwardParams& p, int64_t n,
                                                   const CellGrad<Acc>& g, Acc dbias,
                                                   const ConstantGrads<Acc>& dk) {
  static_cast<scalar_t*>(p.grad_i0)[n] = static_cast<scalar_t>(g.di);
  static_cast<scalar_t*>(p.grad_h0)[n] = static_cast<scalar_t>(g.dh);
  static_cast<scalar_t*>(p.grad_hs0)[n] = static_cast<scalar_t>(g.dhs);
  static_cast<Acc*>(p.grad_bias_partial)[n] = dbias;
  if constexpr (kConstGrad) {
#pragma unroll
    for (int j = 0; j < kNumConstants; ++j)
      static_cast<Acc*>(p.grad_constants_partial)[j * p.N + n] = dk.v[j];
  }
}

// Neurons per thread of the forward (kLanes, "lanes"; src_lanes.cuh): 2 where the launcher can
// (forward_lanes: H even, the per-step tensors aligned to a pair), else 1. A thread pays the
// per-step work that is not the cell's -- the loop, the addresses, the ring, the 16-bit
// packing -- once for its lanes, and loads and stores both with one vector access; at the
// H200 size two lanes also fit the whole layer in one wave (131k threads at <= 64 registers,
// where 262k threads at 60 registers took two). Storage of at most 4 bytes only: double, the
// gradient checks' type, keeps one lane.
template <typename scalar_t>
constexpr bool kForwardPairs = sizeof(scalar_t) <= 4;
// The detached backward's (src_detached_backward_kernel): 16-bit storage only. Two float lanes
// at the FIFO depth of 4 compile within the targets (40.4 instructions a neuron-step against
// 46.4, 128 registers), but f32's backward is memory-bound either way (GPU_NOTES.md).
template <typename scalar_t>
constexpr bool kBackwardPairs = sizeof(scalar_t) == 2;

// The forward: a thread walks its kLanes neurons through time, the drives read R steps ahead
// through a ring, a checkpoint of the state stored every kChunk steps (kSave), the final state
// written at the end. Long (~95 lines) on purpose: the ring, the lanes' state and the two
// closures over them live in this one frame, in registers; the three loops (steady state,
// drain, past a sample's length) are its phases in time.
template <typename scalar_t, typename Acc, bool kSave, bool kLengths, bool kPerNeuron, int kLanes>
__global__ void __launch_bounds__(kThreads)
    src_forward_kernel(const ForwardParams p, const CellConstants<Acc> k_layer,
                       const scalar_t* __restrict__ u, scalar_t* __restrict__ spikes,
                       Acc* __restrict__ checkpoints) {
  constexpr int L = kLanes;
  using IO = LaneWord<scalar_t, Acc, L>;
  using Row = typename IO::Word;
  using Slot = typename IO::Slot;
  const int64_t n0 = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * L;
  if (n0 >= p.N) return;
  // T: this thread's own number of steps (p.T without lengths; its lanes share a sample).
  const int64_t N = p.N, T = steps_of<kLengths>(p.lengths, n0, p.H, p.T);
  // One time step, in Rows. In 32 bits for two lanes (forward_lanes checks that a checkpoint's 3
  // rows fit): ptxas then steps the pointers with fewer instructions (~2 a step, sm_90).
  const std::conditional_t<(L > 1), uint32_t, int64_t> row = N / L;
  const Acc floor = static_cast<Acc>(p.output_floor);  // 0: spikes, -inf: the voltage h
  CellConstants<Acc> k[L];
  CandidateBias<Acc> bias[L];
  CellState<Acc> s[L];
#pragma unroll
  for (int l = 0; l < L; ++l) {
    const int64_t n = n0 + l;
    neuron_setup<kPerNeuron, scalar_t>(p, k_layer, n, k[l], bias[l]);
    s[l] = {load<Acc>(static_cast<const scalar_t*>(p.i0), n),
            load<Acc>(static_cast<const scalar_t*>(p.h0), n),
            load<Acc>(static_cast<const scalar_t*>(p.hs0), n)};
  }
  const Row* in = reinterpret_cast<const Row*>(u + n0);
  Row* out = reinterpret_cast<Row*>(spikes + n0);
  Lanes<Acc, L>* ck = kSave ? reinterpret_cast<Lanes<Acc, L>*>(checkpoints + n0) : nullptr;
  const auto checkpoint = [&] {
    using CheckpointIO = LaneWord<Acc, Acc, L>;
    Acc i[L], h[L], hs[L];
#pragma unroll
    for (int l = 0; l < L; ++l) i[l] = s[l].i, h[l] = s[l].h, hs[l] = s[l].hs;
    ck[0] = CheckpointIO::put(i);
    ck[row] = CheckpointIO::put(h);
    ck[2 * row] = CheckpointIO::put(hs);
    ck += 3 * row;
  };
  // One step of every lane from its drive; emits into dst.
  const auto step = [&](const Slot& drive, Row* dst) {
    Acc emit[L];
#pragma unroll
    for (int l = 0; l < L; ++l) {
      cell_step(k[l], IO::get(drive, l), bias[l], s[l]);
      emit[l] = emitted(s[l].h, floor);
    }
    *dst = IO::put(emit);
  };

  // ring[j] holds the drives of step t + j (raw storage: converted at their use, so that the
  // thread waits for a load only there). `ahead` points at the row of step t + R, `dst` at
  // that of step t: each step advances both by one row.
  constexpr int R = kForwardRing<L>;
  Slot ring[R];
  const Row* ahead = in;
#pragma unroll
  for (int j = 0; j < R; ++j, ahead += row) ring[j] = j < T ? Slot(*ahead) : Slot{};
  Row* dst = out;

  int64_t t = 0;
  // Steady state: R steps per iteration; step j takes ring[j] and refills it with the drives of
  // step t + j + R, its use in the next iteration (always inside the sequence here, so
  // unguarded).
  for (; t + 2 * R <= T; t += R) {
    if (kSave && (t & (kChunk - 1)) == 0) checkpoint();
#pragma unroll
    for (int j = 0; j < R; ++j, ahead += row, dst += row) {
      const Slot drive = ring[j];
      ring[j] = *ahead;
      step(drive, dst);
    }
  }
  // The last steps (fewer than 2 R): the ring drains.
  for (; t < T; ++t, ahead += row, dst += row) {
    if (kSave && (t & (kChunk - 1)) == 0) checkpoint();
    const Slot drive = ring[0];
#pragma unroll
    for (int j = 0; j + 1 < R; ++j) ring[j] = ring[j + 1];
    ring[R - 1] = t + R < T ? Slot(*ahead) : Slot{};
    step(drive, dst);
  }
  // Past its length: no spikes; the remaining checkpoints hold the frozen state.
  for (; kLengths && t < p.T; ++t, dst += row) {
    if (kSave && (t & (kChunk - 1)) == 0) checkpoint();
    Acc zero[L];
#pragma unroll
    for (int l = 0; l < L; ++l) zero[l] = Acc(0);
    *dst = IO::put(zero);
  }
#pragma unroll
  for (int l = 0; l < L; ++l) {
    static_cast<scalar_t*>(p.i_n)[n0 + l] = static_cast<scalar_t>(s[l].i);
    static_cast<scalar_t*>(p.h_n)[n0 + l] = static_cast<scalar_t>(s[l].h);
    static_cast<scalar_t*>(p.hs_n)[n0 + l] = static_cast<scalar_t>(s[l].hs);
  }
}

// One full chunk of exact BPTT, whose Jacobians are 4 values a step (see kExactSplit):
// steps t0 .. t0 + kChunk - 1. The chunk's loads form one stream, in the order they are consumed: u
// of steps 0 .. kChunk-1 (recompute), grad_spikes of steps kChunk-1 .. 0 (walk), then the first
// kBackwardAhead drives of the next chunk walked (the one before in time, if has_next) and its
// checkpoint. `fifo` holds the next kBackwardAhead of them: each consumption issues the load
// kBackwardAhead places further on. Long (~125 lines) on purpose: the load stream, the recompute
// and the walk share the fifo and the chunk's Jacobians in registers, which only one function body
// keeps out of local memory.
template <bool kStraightThrough, bool kConstGrad, typename scalar_t, typename Acc, typename K>
__device__ __forceinline__ void backward_chunk_exact(
    const K& k, const CandidateBias<Acc>& bias, int64_t N, int64_t gs_step, int64_t t0,
    bool has_next, const scalar_t* __restrict__ u, const scalar_t* __restrict__ grad_spikes,
    const Acc* __restrict__ checkpoints, scalar_t* __restrict__ grad_u,
    scalar_t (&fifo)[kBackwardAhead<scalar_t>], CellState<Acc>& s, CellGrad<Acc>& g, Acc& dbias,
    ConstantGrads<Acc>& dk) {
  // On the last chunk there is no next one: its loads re-read this chunk's first steps and
  // checkpoint, unused (unconditional loads are issued where they are written); likewise the
  // prefetches of the chunk after the next.
  const int64_t next_t0 = has_next ? t0 - kChunk : t0;
  const int64_t next2_t0 = t0 >= 2 * kChunk ? t0 - 2 * kChunk : next_t0;
  // The stream's item i (0 <= i < 2 kChunk + kBackwardAhead<scalar_t>).
  const auto fetch = [&](int i) -> scalar_t {
    if (i < kChunk) return load_nc(u + (t0 + i) * N);
    if (i < 2 * kChunk) return load_nc(grad_spikes + (t0 + (2 * kChunk - 1 - i)) * gs_step);
    return load_nc(u + (next_t0 + (i - 2 * kChunk)) * N);
  };
  // Into L2, first: every address that the next loop iteration (the next chunk walked) will
  // load into registers, i.e. that chunk's items kBackwardAhead .. 2 kChunk - 1 (u of its
  // steps kBackwardAhead .. kChunk - 1, grad_spikes of all its steps), the first
  // kBackwardAhead drives of the chunk after it, and its checkpoint. So each register load
  // is covered by a prefetch of its address issued in the iteration before (at least
  // 2 kChunk - kBackwardAhead of the stream's loads ahead: 12 steps, 8 for 2-byte storage),
  // at no register cost,
  // and the FIFO's lead needs to cover only an L2 hit (benchmarks/GPU_NOTES.md). The contract:
  // an iteration prefetches what the next one loads.
  // The FIFO's loads are stated read-only (load_nc): next to the prefetches' inline asm the
  // compiler no longer infers it, and plain loads stayed behind the walk's stores. One group
  // at the chunk's start, pointers stepped row by row (2-3 instructions per prefetch); spread
  // over the steps (each beside its FIFO load) they cost more registers (spills at the cap).
  {
    constexpr int A = kBackwardAhead<scalar_t>;
    const scalar_t* pu = u + next2_t0 * N;
#pragma unroll
    for (int j = 0; j < A; ++j, pu += N) prefetch_l2(pu);
    pu = u + (next_t0 + A) * N;
#pragma unroll
    for (int j = A; j < kChunk; ++j, pu += N) prefetch_l2(pu);
    const scalar_t* pg = grad_spikes + next_t0 * gs_step;
#pragma unroll
    for (int j = 0; j < kChunk; ++j, pg += gs_step) prefetch_l2(pg);
    const Acc* ck2 = checkpoint_at(checkpoints, next2_t0, N);
    prefetch_l2(ck2);
    prefetch_l2(ck2 + N);
    prefetch_l2(ck2 + 2 * N);
    if constexpr (kExactSplit<Acc> > 0) {
      // The next chunk reads its own checkpoint a second time (load_fresh, below); this
      // iteration loads it into registers anyway, so it is in L2 already: the prefetch
      // states that, as the contract above asks, for 3 instructions a chunk.
      const Acc* ck1 = checkpoint_at(checkpoints, next_t0, N);
      prefetch_l2(ck1);
      prefetch_l2(ck1 + N);
      prefetch_l2(ck1 + 2 * N);
    }
  }

  // The chunk in two parts, so that only one part's Jacobians are held at a time (F =
  // kExactSplit steps, then L = kChunk - F):
  //   A: the first F steps run forward from the checkpoint for the state only, drives kept;
  //   B: the last L steps are recomputed keeping their Jacobians, and walked back;
  //   C: the first F steps are recomputed again, from the checkpoint read again and the kept
  //      drives, keeping their Jacobians, and walked back.
  // The stream is read once, in the order of a whole-chunk recompute. With F = 0 (double) it
  // is that: B over the whole chunk.
  constexpr int A = kBackwardAhead<scalar_t>, F = kExactSplit<Acc>, L = kChunk - F;
  // Pass C's start: the checkpoint read again, with a load the compiler may not merge with
  // the first (load_fresh), issued here, a chunk part ahead of its use. Started from the
  // same registers, ptxas would keep pass A's values for reuse (it sees through an empty
  // asm), in the very registers the split is meant to free.
  CellState<Acc> s_again;
  if constexpr (F > 0) {
    const Acc* ck = checkpoint_at(checkpoints, t0, N);
    s_again = {load_fresh(ck), load_fresh(ck + N), load_fresh(ck + 2 * N)};
  }
  scalar_t first_drives[F > 0 ? F : 1];
#pragma unroll
  for (int j = 0; j < F; ++j) {
    first_drives[j] = fifo[j % A];
    fifo[j % A] = fetch(j + A);
    cell_step(k, static_cast<Acc>(first_drives[j]), bias, s);
  }
  Acc dh_dpre[L], dx_di[L], dhs_dh_prev[L], dhs_dhs_prev[L];  // L >= F: part B's or C's
  StepInputs<Acc> inputs[kConstGrad ? L : 1];
  uint32_t spiking = 0;
  // Recompute with the drive given, keeping the Jacobian in slot j (relu masks as bits).
  const auto recompute = [&](int j, Acc drive) {
    const Acc h_prev = s.h, hs_prev = s.hs, i_prev = s.i;
    const StepTrace<Acc> tr = cell_step(k, drive, bias, s);
    if constexpr (kConstGrad) inputs[j] = step_inputs(k, tr, i_prev, s.i, h_prev, hs_prev);
    const StepJacobian<Acc> jac = step_jacobian(k, tr, h_prev, hs_prev, s.h);
    spiking = (spiking & ~(1u << j)) | (static_cast<uint32_t>(jac.spiking) << j);
    dh_dpre[j] = jac.dh_dpre;
    dx_di[j] = jac.dx_di;
    dhs_dh_prev[j] = jac.dhs_dh_prev;
    dhs_dhs_prev[j] = jac.dhs_dhs_prev;
  };
  // Walk step m (the chunk's step kChunk - 1 - m, its Jacobian in slot j); the next chunk's
  // checkpoint is loaded with its first drives.
  CellState<Acc> s_next;
  const auto walk = [&](int m, int j) {
    const int i = kChunk + m;
    const Acc gs = static_cast<Acc>(fifo[i % A]);
    fifo[i % A] = fetch(i + A);
    if (i + A == 2 * kChunk) {
      const Acc* ck = checkpoint_at(checkpoints, next_t0, N);
      s_next = {load_nc(ck), load_nc(ck + N), load_nc(ck + 2 * N)};
    }
    const StepJacobian<Acc> jac{((spiking >> j) & 1u) != 0, dh_dpre[j], dx_di[j], dhs_dh_prev[j],
                                dhs_dhs_prev[j]};
    StepSignals<Acc> sig;
    const Acc du = step_backward<false, kStraightThrough>(k, jac, gs, g, dbias, sig);
    if constexpr (kConstGrad) accumulate_constant_grads(k, inputs[j], sig, dk);
    grad_u[(t0 + kChunk - 1 - m) * N] = static_cast<scalar_t>(du);
  };
#pragma unroll
  for (int j = 0; j < L; ++j) {  // B
    const Acc drive = static_cast<Acc>(fifo[(F + j) % A]);
    fifo[(F + j) % A] = fetch(F + j + A);
    recompute(j, drive);
  }
#pragma unroll
  for (int m = 0; m < L; ++m) walk(m, L - 1 - m);
  if constexpr (F > 0) {  // C
    s = s_again;
#pragma unroll
    for (int j = 0; j < F; ++j) recompute(j, static_cast<Acc>(first_drives[j]));
#pragma unroll
    for (int m = L; m < kChunk; ++m) walk(m, kChunk - 1 - m);
  }
  s = s_next;
}

// The last chunk in time when it is shorter than kChunk (steps t0 .. t0 + len - 1), walked
// first, once per thread: a rolled loop with its Jacobians in local memory, so that it adds
// nothing to the registers of the unrolled steady state above.
template <bool kDetach, bool kStraightThrough, bool kConstGrad, typename scalar_t, typename Acc,
          typename K>
__device__ __forceinline__ void backward_partial_chunk(
    const K& k, const CandidateBias<Acc>& bias, int64_t N, int64_t gs_step, int64_t t0, int len,
    const scalar_t* __restrict__ u, const scalar_t* __restrict__ grad_spikes,
    const Acc* __restrict__ checkpoints, scalar_t* __restrict__ grad_u, CellGrad<Acc>& g,
    Acc& dbias, ConstantGrads<Acc>& dk) {
  const Acc* ck = checkpoint_at(checkpoints, t0, N);
  CellState<Acc> s{ck[0], ck[N], ck[2 * N]};
  StepJacobian<Acc> jac[kChunk];
  StepInputs<Acc> inputs[kConstGrad ? kChunk : 1];
#pragma unroll 1
  for (int j = 0; j < len; ++j) {
    const Acc h_prev = s.h, hs_prev = s.hs, i_prev = s.i;
    const StepTrace<Acc> tr = cell_step(k, load<Acc>(u, (t0 + j) * N), bias, s);
    if constexpr (kConstGrad) inputs[j] = step_inputs(k, tr, i_prev, s.i, h_prev, hs_prev);
    jac[j] = step_jacobian(k, tr, h_prev, hs_prev, s.h);
  }
#pragma unroll 1
  for (int j = len - 1; j >= 0; --j) {
    StepSignals<Acc> sig;
    const Acc du = step_backward<kDetach, kStraightThrough>(
        k, jac[j], load<Acc>(grad_spikes, (t0 + j) * gs_step), g, dbias, sig);
    if constexpr (kConstGrad) accumulate_constant_grads(k, inputs[j], sig, dk);
    grad_u[(t0 + j) * N] = static_cast<scalar_t>(du);
  }
}

// The backward's full chunks, last in time first: f(c) for c = last_full .. 0, c the chunk's
// index (its first step c kChunk). With lengths the counter is the same in every thread, from
// the last full chunk of the longest sequence (T_all) down, and each thread takes part from
// its own last full chunk on. The chunk's first step is then warp-uniform and every address a
// uniform offset of a per-thread base pointer, as without lengths; a per-thread first step
// needed per-thread 64-bit offsets, whose registers kept the exact variants from prefetching
// (GPU_NOTES.md). The counters are ints (check_chunks in src_recurrence_cuda_backend.h bounds T).
template <bool kLengths, typename F>
__device__ __forceinline__ void for_each_full_chunk(int64_t T_all, int64_t last_full, F&& f) {
  const int own_last = static_cast<int>(last_full);
  for (int c = kLengths ? static_cast<int>(T_all / kChunk) - 1 : own_last; c >= 0; --c) {
    if (kLengths && c > own_last) continue;
    f(c);
  }
}

// Exact BPTT: one neuron a thread, the full chunks through backward_chunk_exact.
template <typename scalar_t, typename Acc, bool kStraightThrough, bool kLengths, bool kPerNeuron,
          bool kConstGrad>
__global__ void __launch_bounds__(kThreads, kBackwardMinBlocksFor<Acc, kConstGrad>)
    src_exact_backward_kernel(const BackwardParams p, const CellConstants<Acc> k_layer,
                              const scalar_t* __restrict__ u,
                              const scalar_t* __restrict__ grad_spikes,
                              const Acc* __restrict__ checkpoints, scalar_t* __restrict__ grad_u) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= p.N) return;
  // T: this neuron's own length; the final state's gradients enter at its last step.
  const int64_t N = p.N, T = steps_of<kLengths>(p.lengths, n, p.H, p.T);
  CellConstants<Acc> k;
  CandidateBias<Acc> bias;
  neuron_setup<kPerNeuron, scalar_t>(p, k_layer, n, k, bias);
  CellGrad<Acc> g = final_state_grads<scalar_t, Acc>(p, n);
  Acc dbias = Acc(0);
  ConstantGrads<Acc> dk;  // kConstGrad only
  zero_constant_grads(dk);
  u += n;
  // grad_spikes through its strides (n itself when (B, H) is contiguous: coalesced as u).
  grad_spikes += (n / p.H) * p.grad_spikes_stride_b + (n % p.H) * p.grad_spikes_stride_h;
  const int64_t gs_step = p.grad_spikes_stride_t;
  grad_u += n;
  checkpoints += n;
  for (int64_t t = T; kLengths && t < p.T; ++t) grad_u[t * N] = scalar_t(0);  // no step

  int64_t c = num_checkpoints(T) - 1;  // the chunk walked first: the last in time
  if (c >= 0 && T - c * kChunk < kChunk) {
    backward_partial_chunk<false, kStraightThrough, kConstGrad>(
        k, bias, N, gs_step, c * kChunk, static_cast<int>(T - c * kChunk), u, grad_spikes,
        checkpoints, grad_u, g, dbias, dk);
    --c;
  }
  // Full chunks from here on. With lengths the test is the launch's (a full chunk in any
  // sequence), the same in every thread: a thread with none of its own loads chunk 0's values,
  // unused, and takes part in no chunk (for_each_full_chunk). Behind a per-thread test the
  // loop cost the exact +lengths variants the L2 lead of their FIFO (GPU_NOTES.md, session 24).
  if (kLengths ? p.T >= kChunk : c >= 0) {
    const int64_t c_first = c < 0 ? 0 : c;
    const Acc* ck = checkpoints + c_first * 3 * N;
    CellState<Acc> s{ck[0], ck[N], ck[2 * N]};
    scalar_t fifo[kBackwardAhead<scalar_t>];
#pragma unroll
    for (int j = 0; j < kBackwardAhead<scalar_t>; ++j) fifo[j] = u[(c_first * kChunk + j) * N];
    for_each_full_chunk<kLengths>(p.T, c, [&](int cu) {
      backward_chunk_exact<kStraightThrough, kConstGrad>(
          k, bias, N, gs_step, static_cast<int64_t>(cu) * kChunk, cu > 0, u, grad_spikes,
          checkpoints, grad_u, fifo, s, g, dbias, dk);
    });
  }
  store_neuron_grads<kConstGrad, scalar_t>(p, n, g, dbias, dk);
}

// One full chunk of the detached backward (src_cell.h: detached_du_term), for a thread's L
// lanes: each step's q and a are made in the recompute, where both load streams
// are consumed, so a chunk keeps one register a lane-step (q, in place of the Jacobian's
// two and the spike bits) and its walk back is one FMA; the stores then run forward in time.
// That leaves room for two lanes at the 128-register cap, whose loop, addresses and 16-bit
// packing are paid once for both neurons. Steps t0 .. t0 + kChunk - 1; `drives` and `grads`
// are FIFOs of the next A = kDetachedAhead<L> steps' u and grad_spikes (rows of the lanes):
// each use refills its slot A steps on, from this chunk (`u_ahead`, `grads_ahead`: its step A)
// and past its end from the next chunk walked (`u_next`, `grads_next`: its first step; the
// chunk before in time, or this one again at the last).
// g: the gradients after the chunk on entry (g.dh enters at its last step, g.di through the
// walk's carry), before it on exit; a_sum: the sum of a over the steps (the bias's gradient,
// (1 - z) times it). kConstGrad: each step's gradients of the constants are added to dk in
// the recompute, but alpha's, which needs di: each step's i[t-1] is kept for the walk.
template <bool kStraightThrough, bool kConstGrad, int L, typename IO, typename Acc, typename Index>
__device__ __forceinline__ void detached_chunk(
    const CellConstants<Acc> (&k)[L], const CandidateBias<Acc> (&bias)[L], Index row, Index gs_row,
    const typename IO::Word* __restrict__ u_ahead,
    const typename IO::Word* __restrict__ grads_ahead, const typename IO::Word* __restrict__ u_next,
    const typename IO::Word* __restrict__ grads_next,
    const Lanes<Acc, L>* __restrict__ checkpoint_next, typename IO::Word* __restrict__ grad_u,
    typename IO::Slot (&drives)[kDetachedAhead<L>], typename IO::Slot (&grads)[kDetachedAhead<L>],
    CellState<Acc> (&s)[L], CellGrad<Acc> (&g)[L], Acc (&a_sum)[L], ConstantGrads<Acc> (&dk)[L]) {
  using Slot = typename IO::Slot;
  constexpr int A = kDetachedAhead<L>;
  // The next chunk's checkpoint, issued before the recompute: used after the walk.
  const Lanes<Acc, L> next_i = checkpoint_next[0], next_h = checkpoint_next[row],
                      next_hs = checkpoint_next[2 * row];
  Acc q[L][kChunk];
  Acc i_prev[L][kConstGrad ? kChunk : 1];
#pragma unroll
  for (int j = 0; j < kChunk; ++j, u_ahead += row, grads_ahead += gs_row) {
    if (j == kChunk - A) u_ahead = u_next, grads_ahead = grads_next;
    const Slot drive = drives[j % A], grad = grads[j % A];
    drives[j % A] = *u_ahead;
    grads[j % A] = *grads_ahead;
#pragma unroll
    for (int l = 0; l < L; ++l) {
      const Acc h_prev = s[l].h, hs_prev = s[l].hs;
      if constexpr (kConstGrad) i_prev[l][j] = s[l].i;
      const StepTrace<Acc> tr = cell_step(k[l], IO::get(drive, l), bias[l], s[l], k[l].one_minus_z);
      Acc dh = spike_grad<kStraightThrough>(s[l].h, IO::get(grad, l));
      if (j == kChunk - 1) dh += g[l].dh;  // the final state's, where this is the last step
      Acc a;
      q[l][j] = detached_du_term(tr, dh, a, a_sum[l]);
      if constexpr (kConstGrad) {  // the step's signals (step_backward's sig), di left to the walk
        const StepSignals<Acc> sig{dh, j == kChunk - 1 ? g[l].dhs : Acc(0), k[l].one_minus_z * a,
                                   Acc(0)};
        accumulate_constant_grads_but_alpha(
            k[l], step_inputs_of_x(k[l], tr, i_prev[l][j], s[l].i, h_prev, hs_prev), sig, dk[l]);
      }
    }
  }
  // Walk back: q[j] becomes di[j] = dL/du of step j.
#pragma unroll
  for (int l = 0; l < L; ++l) {
    q[l][kChunk - 1] += g[l].di;
#pragma unroll
    for (int j = kChunk - 2; j >= 0; --j) q[l][j] = k[l].alpha * q[l][j + 1] + q[l][j];
    if constexpr (kConstGrad) {
#pragma unroll
      for (int j = 0; j < kChunk; ++j) dk[l].v[kAlpha] += q[l][j] * i_prev[l][j];
    }
    g[l] = {Acc(0), Acc(0), k[l].alpha * q[l][0]};
    s[l] = {next_i.v[l], next_h.v[l], next_hs.v[l]};
  }
#pragma unroll
  for (int j = 0; j < kChunk; ++j, grad_u += row) {
    Acc du[L];
#pragma unroll
    for (int l = 0; l < L; ++l) du[l] = q[l][j];
    *grad_u = IO::put(du);
  }
}

// Backward with detached states: kLanes neurons a thread (2 where backward_lanes allows), the
// full chunks through detached_chunk. The last chunk in time, when shorter, is each lane's
// backward_partial_chunk (once per thread, rolled). Just over 80 lines: the set-up of the FIFOs
// that detached_chunk refills, which must share its frame to stay in registers.
template <typename scalar_t, typename Acc, bool kStraightThrough, bool kLengths, bool kPerNeuron,
          bool kConstGrad, int kLanes>
__global__ void __launch_bounds__(kThreads, kBackwardMinBlocks<Acc>)
    src_detached_backward_kernel(const BackwardParams p, const CellConstants<Acc> k_layer,
                                 const scalar_t* __restrict__ u,
                                 const scalar_t* __restrict__ grad_spikes,
                                 const Acc* __restrict__ checkpoints,
                                 scalar_t* __restrict__ grad_u) {
  constexpr int L = kLanes;
  using IO = LaneWord<scalar_t, Acc, L>;
  using Row = typename IO::Word;
  using Slot = typename IO::Slot;
  // One time step in Rows; in 32 bits for two lanes (backward_lanes checks they fit), as the
  // forward's.
  using Index = std::conditional_t<(L > 1), uint32_t, int64_t>;
  const int64_t n0 = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * L;
  if (n0 >= p.N) return;
  const int64_t N = p.N, T = steps_of<kLengths>(p.lengths, n0, p.H, p.T);
  const Index row = static_cast<Index>(N / L),
              gs_row = static_cast<Index>(p.grad_spikes_stride_t / L);
  CellConstants<Acc> k[L];
  CandidateBias<Acc> bias[L];
  CellGrad<Acc> g[L];
  Acc dbias[L], a_sum[L];
  ConstantGrads<Acc> dk[L];  // kConstGrad only
  const scalar_t* gs[L];  // each lane's grad_spikes at step 0, through the strides
#pragma unroll
  for (int l = 0; l < L; ++l) {
    const int64_t n = n0 + l;
    neuron_setup<kPerNeuron, scalar_t>(p, k_layer, n, k[l], bias[l]);
    g[l] = final_state_grads<scalar_t, Acc>(p, n);
    dbias[l] = a_sum[l] = Acc(0);
    zero_constant_grads(dk[l]);
    gs[l] = grad_spikes + (n / p.H) * p.grad_spikes_stride_b + (n % p.H) * p.grad_spikes_stride_h;
    for (int64_t t = T; kLengths && t < p.T; ++t) grad_u[t * N + n] = scalar_t(0);  // no step
  }

  int64_t c = num_checkpoints(T) - 1;  // the chunk walked first: the last in time
  if (c >= 0 && T - c * kChunk < kChunk) {
#pragma unroll
    for (int l = 0; l < L; ++l)
      backward_partial_chunk<true, kStraightThrough, kConstGrad>(
          k[l], bias[l], N, p.grad_spikes_stride_t, c * kChunk, static_cast<int>(T - c * kChunk),
          u + n0 + l, gs[l], checkpoints + n0 + l, grad_u + n0 + l, g[l], dbias[l], dk[l]);
    --c;
  }
  // Full chunks, as src_exact_backward_kernel walks them (for_each_full_chunk).
  if (kLengths ? p.T >= kChunk : c >= 0) {
    const Row* U = reinterpret_cast<const Row*>(u + n0);
    const Row* GS = reinterpret_cast<const Row*>(gs[0]);  // lane 1's follows (backward_lanes)
    Row* GU = reinterpret_cast<Row*>(grad_u + n0);
    const auto* CK = reinterpret_cast<const Lanes<Acc, L>*>(checkpoints + n0);
    const int64_t c_first = c < 0 ? 0 : c;
    CellState<Acc> s[L];
    const Lanes<Acc, L> i = CK[c_first * 3 * row], h = CK[(c_first * 3 + 1) * row],
                        hs = CK[(c_first * 3 + 2) * row];
    Slot drives[kDetachedAhead<L>], grads[kDetachedAhead<L>];
#pragma unroll
    for (int l = 0; l < L; ++l) s[l] = {i.v[l], h.v[l], hs.v[l]};
#pragma unroll
    for (int j = 0; j < kDetachedAhead<L>; ++j) {
      drives[j] = U[(c_first * kChunk + j) * row];
      grads[j] = GS[(c_first * kChunk + j) * gs_row];
    }
    // The last chunk has no next one: its loads re-read its own steps and checkpoint, unused.
    for_each_full_chunk<kLengths>(p.T, c, [&](int cu) {
      const int64_t t0 = static_cast<int64_t>(cu) * kChunk, ahead = t0 + kDetachedAhead<L>;
      const int64_t next = cu > 0 ? cu - 1 : cu;
      detached_chunk<kStraightThrough, kConstGrad, L, IO>(
          k, bias, row, gs_row, U + ahead * row, GS + ahead * gs_row, U + next * kChunk * row,
          GS + next * kChunk * gs_row, CK + next * 3 * row, GU + t0 * row, drives, grads, s, g,
          a_sum, dk);
    });
  }
#pragma unroll
  for (int l = 0; l < L; ++l)
    store_neuron_grads<kConstGrad, scalar_t>(p, n0 + l, g[l],
                                             dbias[l] + k[l].one_minus_z * a_sum[l], dk[l]);
}

inline dim3 grid_for(int64_t N) {
  return dim3(static_cast<unsigned int>((N + kThreads - 1) / kThreads));
}

// The per-layer constants, converted to the math's precision here, once (host memory: see
// ConstantsRef), for the device's math; per neuron the kernels read them (and these go unused).
template <typename Acc>
CellConstants<Acc> launch_constants(const ConstantsRef& k) {
  if (k.per_neuron) return CellConstants<Acc>{};
  return CellConstants<Acc>::from(static_cast<const Acc*>(k.data), k.stride_k,
                                  math::gpu_tanh_arg_scale<Acc>());
}

// Whether a pointer is aligned to `bytes` (null: nothing to align).
inline bool aligned(const void* ptr, size_t bytes) {
  return ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % bytes == 0;
}

// SRCEXT_CUDA_LANES=1 in the environment, read at each launch, holds every kernel to one lane:
// the A/B of the two instances on a device (benchmarks/speed.py), and their comparison in the
// tests.
inline bool lanes_forced_to_one() {
  const char* forced = std::getenv("SRCEXT_CUDA_LANES");
  return forced != nullptr && std::strcmp(forced, "1") == 0;
}

// What both kernels' two lanes need: not held to one (lanes_forced_to_one), both of a pair's
// neurons in one sample (H even), a row's pairs counted in 32 bits (3 rows: a checkpoint's),
// and the per-step tensors and checkpoints starting on a pair's alignment (every row does when
// the first does, as N = B H is even).
template <typename scalar_t, typename Acc>
bool pairs_fit(int64_t H, int64_t N, std::initializer_list<const void*> per_step,
               const void* checkpoints) {
  bool fit = !lanes_forced_to_one() && H % 2 == 0 && 3 * (N / 2) <= int64_t(UINT32_MAX) &&
             aligned(checkpoints, 2 * sizeof(Acc));
  for (const void* t : per_step) fit = fit && aligned(t, 2 * sizeof(scalar_t));
  return fit;
}

// The forward: 2 lanes where the storage allows (kForwardPairs) and the pairs fit; else 1.
template <typename scalar_t, typename Acc>
int forward_lanes(const ForwardParams& p) {
  const bool pairs =
      kForwardPairs<scalar_t> && pairs_fit<scalar_t, Acc>(p.H, p.N, {p.u, p.spikes}, p.checkpoints);
  return pairs ? 2 : 1;
}

// The detached backward (src_detached_backward_kernel): 2 lanes with 16-bit storage
// (kBackwardPairs), per-layer constants (per neuron, a lane's constants take the registers a
// second lane needs), pairs that fit, and an upstream gradient whose pairs are adjacent and
// aligned with an even step (in 32 bits, as the rows); else 1.
template <typename scalar_t, typename Acc>
int backward_lanes(const BackwardParams& p) {
  const int64_t t = p.grad_spikes_stride_t, b = p.grad_spikes_stride_b;
  const bool pairs =
      kBackwardPairs<scalar_t> && !p.k.per_neuron &&
      pairs_fit<scalar_t, Acc>(p.H, p.N, {p.u, p.grad_u, p.grad_spikes}, p.checkpoints) &&
      p.grad_spikes_stride_h == 1 && t >= 0 && t % 2 == 0 && t / 2 <= int64_t(UINT32_MAX) &&
      b % 2 == 0;
  return pairs ? 2 : 1;
}

// Runtime flags become template switches here.
template <typename scalar_t>
void launch_forward(const ForwardParams& p, bool save, cudaStream_t stream) {
  using Acc = acc_t<scalar_t>;
  const auto k = launch_constants<Acc>(p.k);
  const auto* u = static_cast<const scalar_t*>(p.u);
  auto* spikes = static_cast<scalar_t*>(p.spikes);
  auto* checkpoints = static_cast<Acc*>(p.checkpoints);
  const bool pairs = forward_lanes<scalar_t, Acc>(p) == 2;
  const dim3 grid = grid_for(pairs ? p.N / 2 : p.N);
  SRC_BOOL_SWITCH(
      save, kSave,
      SRC_BOOL_SWITCH(
          p.lengths != nullptr, kLengths,
          SRC_BOOL_SWITCH(
              p.k.per_neuron, kPerNeuron,
              SRC_BOOL_SWITCH(
                  pairs, kPairs,
                  launch_kernel<&src_forward_kernel<scalar_t, Acc, kSave, kLengths, kPerNeuron,
                                                    kPairs && kForwardPairs<scalar_t> ? 2 : 1>>(
                      grid, kThreads, stream, p, k, u, spikes, checkpoints)))));
}

template <typename scalar_t>
void launch_backward(const BackwardParams& p, bool detach, bool straight_through,
                     cudaStream_t stream) {
  using Acc = acc_t<scalar_t>;
  const auto k = launch_constants<Acc>(p.k);
  const auto* u = static_cast<const scalar_t*>(p.u);
  const auto* grad_spikes = static_cast<const scalar_t*>(p.grad_spikes);
  const auto* checkpoints = static_cast<const Acc*>(p.checkpoints);
  auto* grad_u = static_cast<scalar_t*>(p.grad_u);
  // The constants' gradients are computed only with per-neuron reads (the op passes per-layer
  // constants whose gradients are wanted that way, with stride_h 0): no per-layer variant.
  const bool constant_grads = p.grad_constants_partial != nullptr;
  if (detach) {
    const bool pairs = backward_lanes<scalar_t, Acc>(p) == 2;
    const dim3 grid = grid_for(pairs ? p.N / 2 : p.N);
    SRC_BOOL_SWITCH(
        straight_through, kStraightThrough,
        SRC_BOOL_SWITCH(
            p.lengths != nullptr, kLengths,
            if (!p.k.per_neuron) {
              SRC_BOOL_SWITCH(
                  pairs, kPairs,
                  launch_kernel<&src_detached_backward_kernel<
                      scalar_t, Acc, kStraightThrough, kLengths, false, false,
                      kPairs && kBackwardPairs<scalar_t> ? 2 : 1>>(
                      grid, kThreads, stream, p, k, u, grad_spikes, checkpoints, grad_u));
            } else {
              SRC_BOOL_SWITCH(
                  constant_grads, kConstGrad,
                  launch_kernel<&src_detached_backward_kernel<scalar_t, Acc, kStraightThrough,
                                                              kLengths, true, kConstGrad, 1>>(
                      grid, kThreads, stream, p, k, u, grad_spikes, checkpoints, grad_u));
            }));
    return;
  }
  const dim3 grid = grid_for(p.N);
  SRC_BOOL_SWITCH(
      straight_through, kStraightThrough,
      SRC_BOOL_SWITCH(
          p.lengths != nullptr, kLengths,
          if (!p.k.per_neuron) {
            launch_kernel<&src_exact_backward_kernel<scalar_t, Acc, kStraightThrough, kLengths,
                                                     false, false>>(
                grid, kThreads, stream, p, k, u, grad_spikes, checkpoints, grad_u);
          } else {
            SRC_BOOL_SWITCH(
                constant_grads, kConstGrad,
                launch_kernel<&src_exact_backward_kernel<scalar_t, Acc, kStraightThrough, kLengths,
                                                         true, kConstGrad>>(
                    grid, kThreads, stream, p, k, u, grad_spikes, checkpoints, grad_u));
          }));
}

}  // namespace cuda
}  // namespace srcext

// One translation unit per storage type instantiates its launchers with this.
#define SRCEXT_CUDA_INSTANTIATE(scalar_t)                                                          \
  template void srcext::cuda::launch_forward<scalar_t>(const srcext::ForwardParams&, bool,         \
                                                       cudaStream_t);                              \
  template void srcext::cuda::launch_backward<scalar_t>(const srcext::BackwardParams&, bool, bool, \
                                                        cudaStream_t);
