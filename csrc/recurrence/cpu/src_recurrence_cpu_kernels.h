// src_recurrence_cpu_kernels.h — the CPU kernels of the srcext ops: the block walks through time.
//
// Neurons are independent, so each thread takes blocks of kLanes adjacent neurons and
// walks them through time; within a block the lane loops are plain loops over the cell
// functions of src_cell.h, which the compiler vectorises (the float math of src_math.h is
// branch-free for that reason). The entry points are multi-versioned (src_cpu_clones.h).
//
// Backward: each chunk of kCheckpointInterval steps is recomputed from its (i, h, hs)
// checkpoint and the drive u, its step traces kept in a small per-block buffer, then walked
// backward.
//
// Included only by the per-dtype translation units src_recurrence_cpu_<dtype>.cpp
// (SRCEXT_CPU_INSTANTIATE, at the end): one per storage dtype, so that a parallel build compiles
// them side by side.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>

#include "../src_recurrence_ops.h"
#include "../../common/src_cpu_clones.h"
#include "../../common/src_switch.h"
#include "src_recurrence_cpu_launch.h"

namespace srcext {
namespace cpu {
namespace {

constexpr int kChunk = static_cast<int>(kCheckpointInterval);
constexpr int64_t kPrefetchSteps = 4;  // steps ahead the drive is prefetched

// Copy n (<= kLanes) values into a full lane array, zero-padding the rest.
template <typename Acc, typename scalar_t>
SRC_HD void load_lanes(const scalar_t* src, int n, Acc* dst) {
  if (n == kLanes) {
    for (int l = 0; l < kLanes; ++l) dst[l] = static_cast<Acc>(src[l]);
  } else {
    for (int l = 0; l < kLanes; ++l) dst[l] = l < n ? static_cast<Acc>(src[l]) : Acc(0);
  }
}

template <typename scalar_t, typename Acc>
SRC_HD void store_lanes(const Acc* src, int n, scalar_t* dst) {
  if (n == kLanes) {
    for (int l = 0; l < kLanes; ++l) dst[l] = static_cast<scalar_t>(src[l]);
  } else {
    for (int l = 0; l < n; ++l) dst[l] = static_cast<scalar_t>(src[l]);
  }
}

// Ask for a row of n values to be brought into cache. Each step touches one short row per
// tensor, a whole (B, H) plane away from the last, which the hardware prefetchers miss.
template <typename T>
SRC_HD void prefetch_row(const T* row, int n) {
  const char* bytes = reinterpret_cast<const char*>(row);
  for (int off = 0; off < n * static_cast<int>(sizeof(T)); off += 64)
    __builtin_prefetch(bytes + off);
}

// The lanes' biases as cell_candidate takes them (candidate_bias_arg).
template <typename Acc, typename scalar_t>
SRC_HD void load_bias(const scalar_t* bias, int64_t H, int64_t n0, int n, Acc* dst) {
  for (int l = 0; l < kLanes; ++l)
    dst[l] = l < n ? candidate_bias_arg(static_cast<Acc>(bias[(n0 + l) % H])) : Acc(0);
}

// The state (i, h, hs) of a block's lanes into checkpoint c.
template <typename Acc>
SRC_HD void store_checkpoint(const Acc* i, const Acc* h, const Acc* hs, int64_t c, int64_t N,
                             int64_t n0, int n, Acc* checkpoints) {
  Acc* ck = checkpoints + c * 3 * N + n0;
  store_lanes(i, n, ck);
  store_lanes(h, n, ck + N);
  store_lanes(hs, n, ck + 2 * N);
}

// The constants of a block's lanes. Per layer: one CellConstants for all lanes. Per neuron:
// one per lane, stored field by field, so that the lane loops read each field as a vector.
template <typename Acc, bool kPerNeuron>
struct BlockConstants {
  CellConstants<Acc> k;
  SRC_HD void load(const ConstantsRef&, int64_t, int64_t, int) {}
  SRC_HD const CellConstants<Acc>& at(int) const { return k; }
};

template <typename Acc>
struct BlockConstants<Acc, true> {
#define SRC_LANE_FIELD(name) Acc name[kLanes];
  SRC_CELL_CONSTANT_FIELDS(SRC_LANE_FIELD)
#undef SRC_LANE_FIELD

  // Lanes past n (padding) take lane 0's constants: any valid values do.
  SRC_HD void load(const ConstantsRef& ref, int64_t H, int64_t n0, int n) {
    for (int l = 0; l < kLanes; ++l) {
      const CellConstants<Acc> c = constants_of<Acc>(ref, n0 + (l < n ? l : 0), H);
#define SRC_LOAD_LANE(name) name[l] = c.name;
      SRC_CELL_CONSTANT_FIELDS(SRC_LOAD_LANE)
#undef SRC_LOAD_LANE
    }
  }
  SRC_HD CellConstants<Acc> at(int l) const {
#define SRC_LANE_VALUE(name) name[l],
    return {SRC_CELL_CONSTANT_FIELDS(SRC_LANE_VALUE)};
#undef SRC_LANE_VALUE
  }
};

// The per-layer constants (host memory: ref.per_neuron is false).
template <typename Acc>
SRC_HD CellConstants<Acc> layer_constants(const ConstantsRef& ref) {
  return CellConstants<Acc>::from(static_cast<const Acc*>(ref.data), ref.stride_k);
}

// Variable lengths. A block's lanes may belong to several samples (rows b = neuron / H) of
// different lengths, so each lane has its own step count len[l] (clamped to [0, T]); the
// block runs unmasked up to the shortest, lane-masked up to the longest, and only writes
// zeros (and the frozen state's checkpoints) after that. Without lengths (kLengths false)
// shortest = longest = T and the masked code is not compiled in.
struct LaneLengths {
  int64_t len[kLanes];
  int64_t shortest, longest;  // over the block's n real lanes
};

// Without lengths every lane runs all T steps (len is then not read).
template <bool kLengths>
SRC_HD void load_lane_lengths(const int64_t* lengths, int64_t H, int64_t T, int64_t n0, int n,
                              LaneLengths& out) {
  out.shortest = T;
  out.longest = kLengths ? 0 : T;
  if (!kLengths) return;
  for (int l = 0; l < kLanes; ++l) {
    const int64_t v = l < n ? std::min<int64_t>(std::max<int64_t>(lengths[(n0 + l) / H], 0), T) : 0;
    out.len[l] = v;
    if (l < n) {
      out.shortest = std::min(out.shortest, v);
      out.longest = std::max(out.longest, v);
    }
  }
}

// cell_step for a block of lanes, one equation at a time over all lanes: each short loop
// gives the out-of-order core many independent vectors, where one long step per vector
// would leave it waiting on the chain exp -> reciprocal -> tanh. x is scratch space.
template <typename Acc, bool kPerNeuron>
SRC_HD void advance_block(const BlockConstants<Acc, kPerNeuron>& k, const Acc* drive, const Acc* b,
                          Acc* i, Acc* h, Acc* hs, Acc* x, Acc* dx_di, Acc* gate, Acc* cand,
                          Acc* dcand) {
  for (int l = 0; l < kLanes; ++l) {
    i[l] = cell_integrate(k.at(l), i[l], drive[l]);
    cell_input(k.at(l), i[l], x[l], dx_di[l]);
  }
  for (int l = 0; l < kLanes; ++l) gate[l] = cell_gate(k.at(l), h[l]);
  for (int l = 0; l < kLanes; ++l)
    cell_candidate(k.at(l), x[l], h[l], hs[l], b[l], cand[l], dcand[l]);
  for (int l = 0; l < kLanes; ++l) {
    const StepTrace<Acc> tr{dx_di[l], gate[l], cand[l], dcand[l], x[l]};
    cell_advance(k.at(l), tr, h[l], hs[l]);
  }
}

// save (the checkpoints for the backward) is a run-time flag, not a template one: it guards
// a store once every kChunk steps, and one instance instead of two halves the build.
template <typename scalar_t, typename Acc, bool kLengths, bool kPerNeuron>
SRC_HD void forward_block(const ForwardParams& p, const BlockConstants<Acc, kPerNeuron>& k,
                          bool save, int64_t n0, int n) {
  const int64_t N = p.N, T = p.T;
  const scalar_t* u = static_cast<const scalar_t*>(p.u);
  scalar_t* spikes = static_cast<scalar_t*>(p.spikes);
  const Acc floor = static_cast<Acc>(p.output_floor);
  Acc* checkpoints = static_cast<Acc*>(p.checkpoints);

  alignas(64) Acc i[kLanes], h[kLanes], hs[kLanes], b[kLanes], drive[kLanes], s[kLanes];
  alignas(64) Acc x[kLanes], dx_di[kLanes], gate[kLanes], cand[kLanes], dcand[kLanes];
  load_lanes(static_cast<const scalar_t*>(p.i0) + n0, n, i);
  load_lanes(static_cast<const scalar_t*>(p.h0) + n0, n, h);
  load_lanes(static_cast<const scalar_t*>(p.hs0) + n0, n, hs);
  load_bias(static_cast<const scalar_t*>(p.bias), p.H, n0, n, b);
  LaneLengths lens;
  load_lane_lengths<kLengths>(p.lengths, p.H, T, n0, n, lens);
  const int64_t shortest = lens.shortest, longest = lens.longest;

  for (int64_t t = 0; t < longest; ++t) {
    if (save && t % kChunk == 0) store_checkpoint(i, h, hs, t / kChunk, N, n0, n, checkpoints);
    if (t + kPrefetchSteps < longest) prefetch_row(u + (t + kPrefetchSteps) * N + n0, n);
    load_lanes(u + t * N + n0, n, drive);
    if (!kLengths || t < shortest) {
      // The step phase by phase across the block (see advance_block).
      advance_block(k, drive, b, i, h, hs, x, dx_di, gate, cand, dcand);
      for (int l = 0; l < kLanes; ++l) s[l] = emitted(h[l], floor);
    } else {
      // Some lanes are past their length: step all, keep the old state where finished.
      alignas(64) Acc i_old[kLanes], h_old[kLanes], hs_old[kLanes];
      for (int l = 0; l < kLanes; ++l) {
        i_old[l] = i[l];
        h_old[l] = h[l];
        hs_old[l] = hs[l];
      }
      advance_block(k, drive, b, i, h, hs, x, dx_di, gate, cand, dcand);
      for (int l = 0; l < kLanes; ++l) {
        const bool active = t < lens.len[l];
        i[l] = active ? i[l] : i_old[l];
        h[l] = active ? h[l] : h_old[l];
        hs[l] = active ? hs[l] : hs_old[l];
        s[l] = active ? emitted(h[l], floor) : Acc(0);
      }
    }
    store_lanes(s, n, spikes + t * N + n0);
  }
  if constexpr (kLengths) {
    // Every lane is done: no spikes, and the checkpoints hold the frozen state.
    for (int l = 0; l < kLanes; ++l) s[l] = Acc(0);
    for (int64_t t = longest; t < T; ++t) {
      if (save && t % kChunk == 0) store_checkpoint(i, h, hs, t / kChunk, N, n0, n, checkpoints);
      store_lanes(s, n, spikes + t * N + n0);
    }
  }
  store_lanes(i, n, static_cast<scalar_t*>(p.i_n) + n0);
  store_lanes(h, n, static_cast<scalar_t*>(p.h_n) + n0);
  store_lanes(hs, n, static_cast<scalar_t*>(p.hs_n) + n0);
}

// Where each lane of a block reads a tensor given by its (T, B, H) strides: whole rows when
// (B, H) is contiguous (the usual case, and a gradient broadcast over T), else a gather.
struct LaneStrides {
  int64_t step;  // stride of t
  bool rows;  // lane l of step t is at t * step + n0 + l
  int64_t lane[kLanes];
};

SRC_HD void lane_strides(int64_t st, int64_t sb, int64_t sh, int64_t H, int64_t n0, int n,
                         LaneStrides& out) {
  out.step = st;
  out.rows = sb == H && sh == 1;
  for (int l = 0; l < kLanes; ++l) {
    const int64_t m = n0 + (l < n ? l : 0);  // padding lanes read a valid element, then zeroed
    out.lane[l] = out.rows ? m : (m / H) * sb + (m % H) * sh;
  }
}

template <typename Acc, typename scalar_t>
SRC_HD void load_lanes_strided(const scalar_t* base, const LaneStrides& s, int64_t t, int64_t n0,
                               int n, Acc* dst) {
  if (s.rows) {
    load_lanes(base + t * s.step + n0, n, dst);
  } else {
    for (int l = 0; l < kLanes; ++l)
      dst[l] = l < n ? static_cast<Acc>(base[t * s.step + s.lane[l]]) : Acc(0);
  }
}

// StepInputs of step j, lane l of a chunk, from the backward's per-step arrays.
template <typename Acc, int kRows>
SRC_HD StepInputs<Acc> chunk_inputs(const Acc (&i_prev)[kRows][kLanes],
                                    const Acc (&dx_drho)[kRows][kLanes],
                                    const Acc (&h_prev)[kChunk][kLanes],
                                    const Acc (&hs_prev)[kChunk][kLanes],
                                    const Acc (&cand)[kChunk][kLanes],
                                    const Acc (&gate)[kChunk][kLanes], int j, int l) {
  return {i_prev[j][l], dx_drho[j][l], h_prev[j][l], hs_prev[j][l], cand[j][l], gate[j][l]};
}

// kConstGrad: also the constants' gradients (p.grad_constants_partial), which need two more
// values per step of the chunk (i[t-1] and d x / d rho) besides its trace.
// straight_through is a run-time flag (a select per lane, see cell_step_backward): one
// instance instead of two halves the build.
// Long (~130 lines) on purpose: the chunk's lane arrays live in this one frame, so that the
// recompute and the backward walk share them without passing a dozen arrays between helpers.
template <typename scalar_t, typename Acc, bool kDetach, bool kLengths, bool kPerNeuron,
          bool kConstGrad>
SRC_HD void backward_block(const BackwardParams& p, const BlockConstants<Acc, kPerNeuron>& k,
                           bool straight_through, int64_t n0, int n) {
  const int64_t N = p.N, T = p.T;
  const scalar_t* grad_spikes = static_cast<const scalar_t*>(p.grad_spikes);
  const scalar_t* u = static_cast<const scalar_t*>(p.u);
  const Acc* checkpoints = static_cast<const Acc*>(p.checkpoints);
  scalar_t* grad_u = static_cast<scalar_t*>(p.grad_u);

  alignas(64) Acc dh[kLanes], dhs[kLanes], di[kLanes], dbias[kLanes], b[kLanes];
  alignas(64) Acc i[kLanes], h[kLanes], hs[kLanes], lane_in[kLanes], lane_out[kLanes];
  // The chunk being walked backward: the state before each step and its trace.
  alignas(64) Acc h_prev[kChunk][kLanes], hs_prev[kChunk][kLanes];
  alignas(64) Acc dx_di[kChunk][kLanes], gate[kChunk][kLanes], cand[kChunk][kLanes],
      dcand[kChunk][kLanes];
  // kConstGrad only: the rest of each step's StepInputs, and the sums of the gradients.
  alignas(64) Acc i_prev[kConstGrad ? kChunk : 1][kLanes], dx_drho[kConstGrad ? kChunk : 1][kLanes];
  alignas(64) Acc dk[kConstGrad ? kNumConstants : 1][kLanes];
  if constexpr (kConstGrad) {
    for (int j = 0; j < kNumConstants; ++j)
      for (int l = 0; l < kLanes; ++l) dk[j][l] = Acc(0);
  }

  load_lanes(static_cast<const scalar_t*>(p.grad_i_n) + n0, n, di);
  load_lanes(static_cast<const scalar_t*>(p.grad_h_n) + n0, n, dh);
  load_lanes(static_cast<const scalar_t*>(p.grad_hs_n) + n0, n, dhs);
  load_bias(static_cast<const scalar_t*>(p.bias), p.H, n0, n, b);
  for (int l = 0; l < kLanes; ++l) dbias[l] = Acc(0);
  LaneStrides gs;
  lane_strides(p.grad_spikes_stride_t, p.grad_spikes_stride_b, p.grad_spikes_stride_h, p.H, n0, n,
               gs);
  LaneLengths lens;
  load_lane_lengths<kLengths>(p.lengths, p.H, T, n0, n, lens);
  const int64_t shortest = lens.shortest, longest = lens.longest;
  if constexpr (kLengths) {
    // No lane takes a step from `longest` on: its drive gets no gradient.
    for (int l = 0; l < kLanes; ++l) lane_out[l] = Acc(0);
    for (int64_t t = longest; t < T; ++t) store_lanes(lane_out, n, grad_u + t * N + n0);
  }

  // Chunks from the last one any lane reaches (the final state's gradients enter there).
  for (int64_t c = num_checkpoints(longest) - 1; c >= 0; --c) {
    const int64_t t0 = c * kChunk;
    const int len = static_cast<int>(std::min<int64_t>(kChunk, longest - t0));
    // While this chunk is computed, fetch the inputs of the one before it.
    for (int64_t t = std::max<int64_t>(0, t0 - kChunk); t < t0; ++t) {
      prefetch_row(u + t * N + n0, n);
      if (gs.rows) prefetch_row(grad_spikes + t * gs.step + n0, n);
    }
    // Recompute the chunk forward from its checkpoint, exactly as the forward ran it. (Lanes
    // past their length run on unmasked here; their steps are dropped below and no earlier
    // step depends on them.)
    const Acc* ck = checkpoints + c * 3 * N + n0;
    load_lanes(ck, n, i);
    load_lanes(ck + N, n, h);
    load_lanes(ck + 2 * N, n, hs);
    for (int j = 0; j < len; ++j) {
      load_lanes(u + (t0 + j) * N + n0, n, lane_in);
      for (int l = 0; l < kLanes; ++l) {
        h_prev[j][l] = h[l];
        hs_prev[j][l] = hs[l];
      }
      if constexpr (kConstGrad) {
        for (int l = 0; l < kLanes; ++l) i_prev[j][l] = i[l];
      }
      advance_block(k, lane_in, b, i, h, hs, lane_out, dx_di[j], gate[j], cand[j], dcand[j]);
      if constexpr (kConstGrad) {
        for (int l = 0; l < kLanes; ++l) {  // lane_out holds x[t]
          const StepTrace<Acc> tr{dx_di[j][l], gate[j][l], cand[j][l], dcand[j][l], lane_out[l]};
          dx_drho[j][l] =
              step_inputs(k.at(l), tr, i_prev[j][l], i[l], h_prev[j][l], hs_prev[j][l]).dx_drho;
        }
      }
    }
    // Walk it backward.
    for (int j = len - 1; j >= 0; --j) {
      const int64_t t = t0 + j;
      load_lanes_strided(grad_spikes, gs, t, n0, n, lane_in);
      if (!kLengths || t < shortest) {
        for (int l = 0; l < kLanes; ++l) {
          const StepTrace<Acc> tr{dx_di[j][l], gate[j][l], cand[j][l], dcand[j][l], Acc(0)};
          CellGrad<Acc> g{dh[l], dhs[l], di[l]};
          StepSignals<Acc> sig;
          lane_out[l] =
              cell_step_backward<kDetach, false>(k.at(l), tr, h_prev[j][l], hs_prev[j][l],
                                                 lane_in[l], g, dbias[l], sig, straight_through);
          dh[l] = g.dh;
          dhs[l] = g.dhs;
          di[l] = g.di;
          if constexpr (kConstGrad) {
            ConstantGrads<Acc> d;
            for (int c2 = 0; c2 < kNumConstants; ++c2) d.v[c2] = dk[c2][l];
            accumulate_constant_grads(
                k.at(l), chunk_inputs(i_prev, dx_drho, h_prev, hs_prev, cand, gate, j, l), sig, d);
            for (int c2 = 0; c2 < kNumConstants; ++c2) dk[c2][l] = d.v[c2];
          }
        }
      } else {
        // Lanes past their length took no step t: their gradients pass it unchanged (the
        // final state's enter at the last step taken) and their drive gets none.
        for (int l = 0; l < kLanes; ++l) {
          const bool active = t < lens.len[l];
          const StepTrace<Acc> tr{dx_di[j][l], gate[j][l], cand[j][l], dcand[j][l], Acc(0)};
          CellGrad<Acc> g{dh[l], dhs[l], di[l]};
          Acc db = dbias[l];
          StepSignals<Acc> sig;
          const Acc du = cell_step_backward<kDetach, false>(
              k.at(l), tr, h_prev[j][l], hs_prev[j][l], lane_in[l], g, db, sig, straight_through);
          lane_out[l] = active ? du : Acc(0);
          dh[l] = active ? g.dh : dh[l];
          dhs[l] = active ? g.dhs : dhs[l];
          di[l] = active ? g.di : di[l];
          dbias[l] = active ? db : dbias[l];
          if constexpr (kConstGrad) {
            ConstantGrads<Acc> d;
            for (int c2 = 0; c2 < kNumConstants; ++c2) d.v[c2] = dk[c2][l];
            accumulate_constant_grads(
                k.at(l), chunk_inputs(i_prev, dx_drho, h_prev, hs_prev, cand, gate, j, l), sig, d);
            for (int c2 = 0; c2 < kNumConstants; ++c2) dk[c2][l] = active ? d.v[c2] : dk[c2][l];
          }
        }
      }
      store_lanes(lane_out, n, grad_u + t * N + n0);
    }
  }
  store_lanes(di, n, static_cast<scalar_t*>(p.grad_i0) + n0);
  store_lanes(dh, n, static_cast<scalar_t*>(p.grad_h0) + n0);
  store_lanes(dhs, n, static_cast<scalar_t*>(p.grad_hs0) + n0);
  store_lanes(dbias, n, static_cast<Acc*>(p.grad_bias_partial) + n0);
  if constexpr (kConstGrad) {
    for (int j = 0; j < kNumConstants; ++j)
      store_lanes(dk[j], n, static_cast<Acc*>(p.grad_constants_partial) + j * N + n0);
  }
}

// kPerNeuron false: per-layer constants, no gradient of them (the default, whose entry points
// hold only that code); true: the constants read per neuron (per-neuron constants, or per-layer
// ones whose gradients are wanted: see ConstantsRef).
template <typename scalar_t, typename Acc, bool kLengths, bool kPerNeuron>
SRC_HD void forward_blocks(const ForwardParams& p, bool save, int64_t begin, int64_t end) {
  BlockConstants<Acc, kPerNeuron> k;
  if constexpr (!kPerNeuron) k.k = layer_constants<Acc>(p.k);
  for (int64_t blk = begin; blk < end; ++blk) {
    const int64_t n0 = blk * kLanes;
    const int n = static_cast<int>(std::min<int64_t>(kLanes, p.N - n0));
    k.load(p.k, p.H, n0, n);
    forward_block<scalar_t, Acc, kLengths, kPerNeuron>(p, k, save, n0, n);
  }
}

template <typename scalar_t, typename Acc, bool kLengths, bool kPerNeuron, bool kConstGrad>
SRC_HD void backward_blocks_with(const BackwardParams& p, bool detach, bool straight_through,
                                 int64_t begin, int64_t end) {
  BlockConstants<Acc, kPerNeuron> k;
  if constexpr (!kPerNeuron) k.k = layer_constants<Acc>(p.k);
  for (int64_t blk = begin; blk < end; ++blk) {
    const int64_t n0 = blk * kLanes;
    const int n = static_cast<int>(std::min<int64_t>(kLanes, p.N - n0));
    k.load(p.k, p.H, n0, n);
    SRC_BOOL_SWITCH(detach, kDetach,
                    backward_block<scalar_t, Acc, kDetach, kLengths, kPerNeuron, kConstGrad>(
                        p, k, straight_through, n0, n));
  }
}

// The per-neuron variants read the constants per lane (per-layer ones whose gradients are wanted
// come through stride_h 0: the op passes them so, see checked_constants).
template <typename scalar_t, typename Acc, bool kLengths, bool kPerNeuron>
SRC_HD void backward_blocks(const BackwardParams& p, bool detach, bool straight_through,
                            int64_t begin, int64_t end) {
  if constexpr (!kPerNeuron) {
    backward_blocks_with<scalar_t, Acc, kLengths, false, false>(p, detach, straight_through, begin,
                                                                end);
  } else {
    SRC_BOOL_SWITCH(p.grad_constants_partial != nullptr, kConstGrad,
                    backward_blocks_with<scalar_t, Acc, kLengths, true, kConstGrad>(
                        p, detach, straight_through, begin, end));
  }
}

}  // namespace

// The entry points (src_recurrence_cpu_launch.h), multi-versioned; everything below them is
// inlined into each clone. The lengths variants are entry points of their own, not one more
// switch inside: GCC compiled the forward's hot loop about 20 % slower in a function that held
// them too. The per-neuron variants are entry points of their own too, so that the default
// ones compile exactly the per-layer code.
template <typename scalar_t, bool kLengths, bool kPerNeuron>
SRC_CPU_CLONES void forward_entry(const ForwardParams& p, bool save, int64_t b, int64_t e) {
  forward_blocks<scalar_t, acc_t<scalar_t>, kLengths, kPerNeuron>(p, save, b, e);
}

template <typename scalar_t, bool kLengths, bool kPerNeuron>
SRC_CPU_CLONES void backward_entry(const BackwardParams& p, bool detach, bool st, int64_t b,
                                   int64_t e) {
  backward_blocks<scalar_t, acc_t<scalar_t>, kLengths, kPerNeuron>(p, detach, st, b, e);
}

}  // namespace cpu
}  // namespace srcext

// The entry points of one storage type, every flag combination, in its own translation unit
// src_recurrence_cpu_<dtype>.cpp.
#define SRCEXT_CPU_INSTANTIATE_FLAGS(scalar_t, kLengths, kPerNeuron)         \
  template void srcext::cpu::forward_entry<scalar_t, kLengths, kPerNeuron>(  \
      const srcext::ForwardParams&, bool, int64_t, int64_t);                 \
  template void srcext::cpu::backward_entry<scalar_t, kLengths, kPerNeuron>( \
      const srcext::BackwardParams&, bool, bool, int64_t, int64_t);
#define SRCEXT_CPU_INSTANTIATE(scalar_t)               \
  SRCEXT_CPU_INSTANTIATE_FLAGS(scalar_t, false, false) \
  SRCEXT_CPU_INSTANTIATE_FLAGS(scalar_t, true, false)  \
  SRCEXT_CPU_INSTANTIATE_FLAGS(scalar_t, false, true)  \
  SRCEXT_CPU_INSTANTIATE_FLAGS(scalar_t, true, true)
