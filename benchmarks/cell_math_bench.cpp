// cell_math_bench.cpp — the fused CPU kernels' cell math alone, on L1-resident data.
//
// The roofline of benchmarks/speed.py: how fast the cell equations of csrc/common/src_cell.h run
// when nothing has to come from memory. Blocks of kLanes neurons are spread over ATen's
// threads and walked through the steps phase by phase across the block, exactly as the CPU
// kernels do (advance_block and the chunked backward of csrc/recurrence/cpu/src_recurrence_cpu_kernels.h), but their
// drive, spikes, upstream gradient and checkpoint are small arrays that stay in L1. The
// kernels' time beyond this is moving the (B, H) planes through memory, and overhead.
//
// Built by speed.py with torch.utils.cpp_extension.load (into the checkout's build/ folder)
// with the compiler flags of setup.py and the kernels' target_clones, so the same ISA runs.
#include <ATen/Parallel.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "common/src_cell.h"
#include "recurrence/src_recurrence_params.h"

// As SRC_CPU_CLONES in csrc/recurrence/cpu/src_recurrence_cpu_kernels.h: the loader picks AVX-512, AVX2+FMA or baseline.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BENCH_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BENCH_CLONES
#endif

namespace {

using srcext::CellConstants;
using srcext::CellGrad;
using srcext::StepTrace;

constexpr int kLanes = 64;  // neurons per block, as in the CPU kernels
constexpr int kChunk = static_cast<int>(srcext::kCheckpointInterval);  // steps per chunk

// Keep the compiler from dropping stores that nothing reads afterwards.
inline void clobber(const void* p) { asm volatile("" : : "r"(p) : "memory"); }

// One step over the block, one equation at a time (the CPU kernels' advance_block).
SRC_HD void advance_block(const CellConstants<float>& k, const float* drive, const float* b,
                          float* i, float* h, float* hs, float* x, float* dx_di, float* gate,
                          float* cand, float* dcand) {
  for (int l = 0; l < kLanes; ++l) {
    i[l] = srcext::cell_integrate(k, i[l], drive[l]);
    srcext::cell_input(k, i[l], x[l], dx_di[l]);
  }
  for (int l = 0; l < kLanes; ++l) gate[l] = srcext::cell_gate(k, h[l]);
  for (int l = 0; l < kLanes; ++l)
    srcext::cell_candidate(k, x[l], h[l], hs[l], b[l], cand[l], dcand[l]);
  for (int l = 0; l < kLanes; ++l) {
    const StepTrace<float> tr{dx_di[l], gate[l], cand[l], dcand[l]};
    srcext::cell_advance(k, tr, h[l], hs[l]);
  }
}

// Inputs of a block: a chunk of drive and upstream gradient, a bias, a state.
struct BlockData {
  alignas(64) float drive[kChunk][kLanes];
  alignas(64) float grad_spikes[kChunk][kLanes];
  alignas(64) float bias[kLanes];
  alignas(64) float i0[kLanes], h0[kLanes], hs0[kLanes];

  explicit BlockData(uint32_t seed) {
    uint32_t s = seed * 2654435761u + 1u;
    auto uniform = [&s]() {  // xorshift32 in [-1, 1)
      s ^= s << 13;
      s ^= s >> 17;
      s ^= s << 5;
      return static_cast<float>(s) * (2.0f / 4294967296.0f) - 1.0f;
    };
    for (auto& row : drive)
      for (float& v : row) v = 0.7f * uniform();  // about the spread of speed.py's drive
    for (auto& row : grad_spikes)
      for (float& v : row) v = 1.0f;  // the gradient of a sum of the spikes
    for (int l = 0; l < kLanes; ++l) {
      bias[l] = -6.0f;
      i0[l] = h0[l] = hs0[l] = 0.0f;
    }
  }
};

// The forward kernel's work per step: load the drive, step, store the spike.
SRC_HD float forward_math_impl(const CellConstants<float>& k, const BlockData& d, int64_t steps) {
  alignas(64) float i[kLanes], h[kLanes], hs[kLanes], drive[kLanes], s[kChunk][kLanes];
  alignas(64) float x[kLanes], dx_di[kLanes], gate[kLanes], cand[kLanes], dcand[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    i[l] = d.i0[l];
    h[l] = d.h0[l];
    hs[l] = d.hs0[l];
  }
  for (int64_t t = 0; t < steps; ++t) {
    const int j = static_cast<int>(t % kChunk);
    for (int l = 0; l < kLanes; ++l) drive[l] = d.drive[j][l];
    advance_block(k, drive, d.bias, i, h, hs, x, dx_di, gate, cand, dcand);
    for (int l = 0; l < kLanes; ++l) s[j][l] = srcext::emitted(h[l], 0.0f);
    clobber(s);
  }
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += i[l] + h[l] + hs[l] + s[0][l];
  return sum;
}

// The backward kernel's work per chunk: recompute it from its checkpoint (the state before
// each step and its trace), then walk it backward (detach_recurrent, straight-through: the
// paper's training setting and the benchmark's).
template <bool kDetach, bool kStraightThrough>
SRC_HD float backward_math_impl(const CellConstants<float>& k, const BlockData& d, int64_t chunks) {
  alignas(64) float dh[kLanes], dhs[kLanes], di[kLanes], dbias[kLanes];
  alignas(64) float i[kLanes], h[kLanes], hs[kLanes], lane_in[kLanes], lane_out[kLanes];
  alignas(64) float h_prev[kChunk][kLanes], hs_prev[kChunk][kLanes];
  alignas(64) float dx_di[kChunk][kLanes], gate[kChunk][kLanes], cand[kChunk][kLanes],
      dcand[kChunk][kLanes];
  alignas(64) float grad_u[kChunk][kLanes];
  for (int l = 0; l < kLanes; ++l) dh[l] = dhs[l] = di[l] = dbias[l] = 0.0f;
  for (int64_t c = 0; c < chunks; ++c) {
    for (int l = 0; l < kLanes; ++l) {
      i[l] = d.i0[l];
      h[l] = d.h0[l];
      hs[l] = d.hs0[l];
    }
    for (int j = 0; j < kChunk; ++j) {
      for (int l = 0; l < kLanes; ++l) {
        lane_in[l] = d.drive[j][l];
        h_prev[j][l] = h[l];
        hs_prev[j][l] = hs[l];
      }
      advance_block(k, lane_in, d.bias, i, h, hs, lane_out, dx_di[j], gate[j], cand[j], dcand[j]);
    }
    for (int j = kChunk - 1; j >= 0; --j) {
      for (int l = 0; l < kLanes; ++l) lane_in[l] = d.grad_spikes[j][l];
      for (int l = 0; l < kLanes; ++l) {
        const StepTrace<float> tr{dx_di[j][l], gate[j][l], cand[j][l], dcand[j][l]};
        CellGrad<float> g{dh[l], dhs[l], di[l]};
        lane_out[l] = srcext::cell_step_backward<kDetach, kStraightThrough>(
            k, tr, h_prev[j][l], hs_prev[j][l], lane_in[l], g, dbias[l]);
        dh[l] = g.dh;
        dhs[l] = g.dhs;
        di[l] = g.di;
      }
      for (int l = 0; l < kLanes; ++l) grad_u[j][l] = lane_out[l];
      clobber(grad_u);
    }
  }
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += di[l] + dh[l] + dhs[l] + dbias[l] + grad_u[0][l];
  return sum;
}

// The constants by value, as the kernels hold them: a local the stores cannot alias.
BENCH_CLONES float forward_math(const CellConstants<float> k, const BlockData& d, int64_t steps) {
  return forward_math_impl(k, d, steps);
}

BENCH_CLONES float backward_math(const CellConstants<float> k, const BlockData& d, int64_t chunks,
                                 bool detach) {
  return detach ? backward_math_impl<true, true>(k, d, chunks)
                : backward_math_impl<false, true>(k, d, chunks);
}

// Wall time of fn(block) on `blocks` blocks spread over ATen's thread pool, as the kernels
// spread theirs (at::parallel_for, grain 1): each thread walks its blocks one after another.
template <typename Fn>
double timed_blocks(int64_t blocks, Fn fn) {
  const BlockData data(1);  // read-only, shared: a copy in every core's L1
  std::vector<float> sink(blocks);
  const auto t0 = std::chrono::steady_clock::now();
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) sink[b] = fn(data);
  });
  const auto t1 = std::chrono::steady_clock::now();
  volatile float keep = 0.0f;
  for (float v : sink) keep = keep + v;
  (void)keep;
  return std::chrono::duration<double>(t1 - t0).count();
}

CellConstants<float> constants(const std::vector<double>& c) {
  if (c.size() != srcext::kNumConstants)
    throw pybind11::value_error("cell_math_bench: expected the 9 cell constants");
  float v[srcext::kNumConstants];
  for (int j = 0; j < srcext::kNumConstants; ++j) v[j] = static_cast<float>(c[j]);
  return CellConstants<float>::from(v, 1);
}

void check_args(int64_t blocks, int64_t steps) {
  if (blocks <= 0) throw pybind11::value_error("cell_math_bench: blocks must be > 0");
  if (steps <= 0) throw pybind11::value_error("cell_math_bench: steps must be > 0");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "The cell math of srcext's CPU kernels alone, on L1-resident blocks (benchmarks only).";
  m.attr("lanes") = kLanes;
  m.attr("chunk") = kChunk;
  m.def(
      "forward",
      [](const std::vector<double>& c, int64_t blocks, int64_t steps) {
        check_args(blocks, steps);
        const auto k = constants(c);
        pybind11::gil_scoped_release release;
        return timed_blocks(blocks, [&](const BlockData& d) { return forward_math(k, d, steps); });
      },
      "Seconds to run `steps` forward steps (the forward kernel's math) on each of `blocks` "
      "blocks of `lanes` neurons, over ATen's threads.",
      pybind11::arg("constants"), pybind11::arg("blocks"), pybind11::arg("steps"));
  m.def(
      "backward",
      [](const std::vector<double>& c, int64_t blocks, int64_t steps, bool detach) {
        check_args(blocks, steps);
        const auto k = constants(c);
        const int64_t chunks = (steps + kChunk - 1) / kChunk;
        pybind11::gil_scoped_release release;
        return timed_blocks(
            blocks, [&](const BlockData& d) { return backward_math(k, d, chunks, detach); });
      },
      "Seconds to run the backward kernel's math (recompute each chunk, walk it back) over "
      "`steps` steps, rounded up to whole chunks, on each of `blocks` blocks, over ATen's threads.",
      pybind11::arg("constants"), pybind11::arg("blocks"), pybind11::arg("steps"),
      pybind11::arg("detach") = true);
}
