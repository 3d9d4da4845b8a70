// src_events_cpu.cpp — CPU kernels of the event-driven projection (csrc/events/src_events_ops.h).
//
// build: rows split into chunks, one pass per chunk that counts and copies the non-zeros into
//   the chunk's own buffer (a chunk past its share of the event budget only counts from
//   there, so a too-dense input costs a read, not a copy); then the chunks are copied into
//   place. The CSR is unique, so the result does not depend on the chunking.
// matmul: parallel over rows; each row adds v * W^T[f, :] of its events into a float row,
//   vectorised over H.
// weight_grad: the events of each block of 256 rows sorted by column (a counting sort), then
//   parallel over slices of H: per block, each input f sums v * grad_u[r, slice] over its
//   events in registers and adds that once into grad_wt[f, slice] (kept packed by slice, as
//   W^T is for the matmul, so that a slice is contiguous in the caches). Each element is owned by one thread and
//   summed in one fixed order: deterministic and bitwise reproducible, whatever the threads.
// The entry points are compiled for AVX-512, AVX2+FMA and baseline x86-64 (target_clones,
// as csrc/recurrence/cpu/src_recurrence_cpu_kernels.h's).
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../../common/src_cpu_clones.h"
#include "../../common/src_switch.h"
#include "../src_events_ops.h"

// Everything below an entry point must inline into it, so that each clone gets its own copy.
#define SRC_EVENTS_INLINE inline __attribute__((always_inline))

namespace srcext {
namespace cpu {
namespace {

constexpr int kScanBlock = 16;  // inputs tested together: an all-zero block is skipped at once
constexpr int64_t kSlice = 64;  // columns of u / grad_wt per tile: 4 AVX-512 / 8 AVX2 vectors
constexpr int64_t kRowBlock = 64;  // rows of u per block of the matmul
constexpr int64_t kGradRows = 256;  // rows of grad_u per block of the weight gradient
constexpr int64_t kGrain = 1 << 15;  // inputs (or multiply-adds) below which a task runs alone

// Non-zero test on the raw bits for 16-bit floats (sign bit ignored: -0 is zero), which
// vectorises; NaN counts as non-zero, so that it propagates as through the GEMM.
SRC_EVENTS_INLINE bool nonzero(float x) { return x != 0.0f; }
SRC_EVENTS_INLINE bool nonzero(double x) { return x != 0.0; }
SRC_EVENTS_INLINE bool nonzero(c10::BFloat16 x) { return (x.x & 0x7fff) != 0; }
SRC_EVENTS_INLINE bool nonzero(c10::Half x) { return (x.x & 0x7fff) != 0; }

// Whether any of kScanBlock values is non-zero, on their bits with the sign masked (the same
// rule as nonzero()): an integer OR reduction, which vectorises where float compares did not.
template <typename scalar_t>
struct ScanBits;
template <>
struct ScanBits<float> {
  typedef uint32_t __attribute__((may_alias)) U;
  static constexpr U kMask = 0x7fffffffu;
};
template <>
struct ScanBits<double> {
  typedef uint64_t __attribute__((may_alias)) U;
  static constexpr U kMask = 0x7fffffffffffffffull;
};
template <>
struct ScanBits<c10::BFloat16> {
  typedef uint16_t __attribute__((may_alias)) U;
  static constexpr U kMask = 0x7fff;
};
template <>
struct ScanBits<c10::Half> {
  typedef uint16_t __attribute__((may_alias)) U;
  static constexpr U kMask = 0x7fff;
};

template <typename scalar_t>
SRC_EVENTS_INLINE bool any_nonzero(const scalar_t* x) {
  using B = ScanBits<scalar_t>;
  static_assert(sizeof(typename B::U) == sizeof(scalar_t), "one word per value");
  const auto* q = reinterpret_cast<const typename B::U*>(x);
  typename B::U acc = 0;
  for (int j = 0; j < kScanBlock; ++j) acc |= q[j] & B::kMask;
  return acc != 0;
}

// One chunk of rows' events, in row order.
template <typename scalar_t>
struct Chunk {
  std::vector<int64_t> col;
  std::vector<scalar_t> val;
  int64_t budget = 0;  // events it may hold
  int64_t count = 0;  // events in its rows
  bool complete = true;  // false: it went over its budget and stopped copying
};

// Scan rows [r0, r1) of s (F inputs each): row_count[r] for each row and, while within the
// budget, the chunk's events. Each row is compacted branch-free into a staging buffer (every
// input of a block with a non-zero is stored, the position advances past non-zeros only: at
// a few percent density a branch per input mispredicts about once per event), then appended
// to the chunk with one budget check per row.
template <typename scalar_t>
SRC_EVENTS_INLINE void scan_rows(const scalar_t* s, int64_t F, int64_t r0, int64_t r1,
                                 int64_t* row_count, Chunk<scalar_t>& c) {
  std::vector<int64_t> cols(F + kScanBlock);
  std::vector<scalar_t> vals(F + kScanBlock);
  int64_t* col = cols.data();
  scalar_t* val = vals.data();
  for (int64_t r = r0; r < r1; ++r) {
    const scalar_t* row = s + r * F;
    int64_t n = 0;
    int64_t f = 0;
    for (; f + kScanBlock <= F; f += kScanBlock) {
      if (!any_nonzero(row + f)) continue;
      for (int j = 0; j < kScanBlock; ++j) {
        col[n] = f + j;
        val[n] = row[f + j];
        n += nonzero(row[f + j]);
      }
    }
    for (; f < F; ++f) {
      col[n] = f;
      val[n] = row[f];
      n += nonzero(row[f]);
    }
    row_count[r] = n;
    c.count += n;
    if (!c.complete) continue;
    if (static_cast<int64_t>(c.col.size()) + n <= c.budget) {
      c.col.insert(c.col.end(), col, col + n);
      c.val.insert(c.val.end(), val, val + n);
    } else {
      c.complete = false;
    }
  }
}

// kSlice values of the math dtype as 32-byte vectors (GCC/Clang vector extensions: each
// clone maps them onto its own registers). Memory is read and written through UVec, the same
// vector aligned as its elements only (unaligned loads / stores, no copy through the stack:
// a memcpy into a vector array compiled to 16-byte stores read back as 32-byte loads, which
// stall store forwarding).
template <typename Acc>
struct Tile {
  typedef Acc Vec __attribute__((vector_size(32)));
  typedef Acc UVec __attribute__((vector_size(32), aligned(alignof(Acc)), may_alias));
  static constexpr int kWidth = 32 / sizeof(Acc);
  static constexpr int kVecs = kSlice / kWidth;
  Vec v[kVecs];

  SRC_EVENTS_INLINE void zero() {
    for (int i = 0; i < kVecs; ++i) v[i] = Vec{};
  }
  SRC_EVENTS_INLINE void load(const Acc* p) {
    for (int i = 0; i < kVecs; ++i) v[i] = *reinterpret_cast<const UVec*>(p + i * kWidth);
  }
  SRC_EVENTS_INLINE void store(Acc* p) const {
    for (int i = 0; i < kVecs; ++i) *reinterpret_cast<UVec*>(p + i * kWidth) = v[i];
  }
  SRC_EVENTS_INLINE void add(const Tile& t) {
    for (int i = 0; i < kVecs; ++i) v[i] += t.v[i];
  }
  // this += a * x[0, kSlice)
  SRC_EVENTS_INLINE void fma(Acc a, const Acc* x) {
#pragma GCC unroll 16
    for (int i = 0; i < kVecs; ++i) v[i] += a * *reinterpret_cast<const UVec*>(x + i * kWidth);
  }
};

// Rows of u by blocks of kRowBlock and, within a block, columns by tiles of kSlice: the
// tile's columns of W^T stay in L2 and its sums in registers while the block's events are
// walked once per tile. W^T comes packed by tiles, (tiles, F, kSlice) zero-padded: a tile is
// then one contiguous 200 kB range, where its rows of W^T (F, H) would sit H values apart
// and, at H = 512, share an eighth of the cache's sets.
template <typename scalar_t, typename Acc>
SRC_EVENTS_INLINE void matmul_rows(const EventMatmulParams& p, const Acc* packed, int64_t r0,
                                   int64_t r1) {
  const auto* val = static_cast<const scalar_t*>(p.val);
  auto* u = static_cast<scalar_t*>(p.u);
  const int64_t H = p.H, F = p.F;
  for (int64_t b0 = r0; b0 < r1; b0 += kRowBlock) {
    const int64_t b1 = std::min(r1, b0 + kRowBlock);
    for (int64_t h0 = 0; h0 < H; h0 += kSlice) {
      const int64_t n = std::min<int64_t>(kSlice, H - h0);
      const Acc* tile = packed + (h0 / kSlice) * F * kSlice;
      for (int64_t r = b0; r < b1; ++r) {
        const int64_t e0 = std::max<int64_t>(p.row_ptr[r], 0), e1 = p.row_ptr[r + 1];
        alignas(32) Acc sums[kSlice];
        Tile<Acc> a;
        a.zero();
        for (int64_t e = e0; e < e1; ++e) {
          const int64_t f = p.col[e];
          if (f < 0 || f >= F) continue;  // checked by the op; never read out of bounds
          a.fma(static_cast<Acc>(val[e]), tile + f * kSlice);
        }
        a.store(sums);
        scalar_t* out = u + r * H + h0;
        for (int64_t j = 0; j < n; ++j) out[j] = static_cast<scalar_t>(sums[j]);
      }
    }
  }
}

// The events of each block of kGradRows rows, sorted by column (rows ascending within a
// column): what the weight gradient walks.
struct BlockColumns {
  int64_t blocks = 0;
  const int64_t* ptr = nullptr;  // (blocks, F + 1): block b's events of column f are
  // [ptr[b * (F + 1) + f], ptr[b * (F + 1) + f + 1])
  const int32_t* row = nullptr;  // (nnz,): row within the block
  const void* val = nullptr;  // (nnz,) storage dtype
};

// Slices [s0, s1) of kSlice columns of grad_wt, summed into `packed` (slices, F, kSlice),
// zero on entry. Per slice and block of rows: the block's grad_u columns, converted to the
// math dtype (kGradRows * kSlice values, in L1/L2), then per input f the sum of its events in
// registers, added once to row f of the slice. Each element of grad_wt is summed by one task
// in one fixed order (blocks in order, rows ascending within each): deterministic.
template <typename scalar_t, typename Acc>
SRC_EVENTS_INLINE void weight_grad_slices(const EventWeightGradParams& p, const BlockColumns& bc,
                                          Acc* packed, int64_t s0, int64_t s1) {
  const auto* val = static_cast<const scalar_t*>(bc.val);
  const auto* g = static_cast<const scalar_t*>(p.grad_u);
  const int64_t H = p.H, F = p.F;
  std::vector<Acc> rows(kGradRows * kSlice);
  for (int64_t sl = s0; sl < s1; ++sl) {
    const int64_t h0 = sl * kSlice;
    const int64_t n = std::min<int64_t>(kSlice, H - h0);
    Acc* slice = packed + sl * F * kSlice;
    for (int64_t b = 0; b < bc.blocks; ++b) {
      const int64_t r0 = b * kGradRows, r1 = std::min(p.R, r0 + kGradRows);
      const int64_t* ptr = bc.ptr + b * (F + 1);
      if (ptr[0] == ptr[F]) continue;  // no events in the block
      for (int64_t r = r0; r < r1; ++r) {
        Acc* dst = rows.data() + (r - r0) * kSlice;
        const scalar_t* src = g + r * H + h0;
        for (int64_t j = 0; j < n; ++j) dst[j] = static_cast<Acc>(src[j]);
        for (int64_t j = n; j < kSlice; ++j) dst[j] = Acc(0);  // the padding columns add 0
      }
      for (int64_t f = 0; f < F; ++f) {
        const int64_t e0 = ptr[f], e1 = ptr[f + 1];
        if (e0 == e1) continue;
        Tile<Acc> acc;
        acc.zero();
        for (int64_t e = e0; e < e1; ++e) {
          acc.fma(static_cast<Acc>(val[e]), rows.data() + bc.row[e] * kSlice);
        }
        Tile<Acc> o;
        o.load(slice + f * kSlice);
        o.add(acc);
        o.store(slice + f * kSlice);
      }
    }
  }
}

}  // namespace

// The entry points, one per kernel and storage type, multi-versioned (src_cpu_clones.h).
template <typename scalar_t>
SRC_CPU_CLONES void scan_entry(const void* s, int64_t F, int64_t r0, int64_t r1, int64_t* row_count,
                               Chunk<scalar_t>& c) {
  scan_rows<scalar_t>(static_cast<const scalar_t*>(s), F, r0, r1, row_count, c);
}

template <typename scalar_t>
SRC_CPU_CLONES void matmul_entry(const EventMatmulParams& p, const void* packed, int64_t r0,
                                 int64_t r1) {
  using Acc = acc_t<scalar_t>;
  matmul_rows<scalar_t, Acc>(p, static_cast<const Acc*>(packed), r0, r1);
}

template <typename scalar_t>
SRC_CPU_CLONES void weight_grad_entry(const EventWeightGradParams& p, const BlockColumns& bc,
                                      void* packed, int64_t s0, int64_t s1) {
  using Acc = acc_t<scalar_t>;
  weight_grad_slices<scalar_t, Acc>(p, bc, static_cast<Acc*>(packed), s0, s1);
}

#define SRC_EVENTS_CPU_INSTANTIATE(scalar_t)                                                     \
  template void scan_entry<scalar_t>(const void*, int64_t, int64_t, int64_t, int64_t*,           \
                                     Chunk<scalar_t>&);                                          \
  template void matmul_entry<scalar_t>(const EventMatmulParams&, const void*, int64_t, int64_t); \
  template void weight_grad_entry<scalar_t>(const EventWeightGradParams&, const BlockColumns&,   \
                                            void*, int64_t, int64_t);
SRC_EVENTS_CPU_INSTANTIATE(float)
SRC_EVENTS_CPU_INSTANTIATE(double)
SRC_EVENTS_CPU_INSTANTIATE(c10::BFloat16)
SRC_EVENTS_CPU_INSTANTIATE(c10::Half)
#undef SRC_EVENTS_CPU_INSTANTIATE

namespace {

struct CpuEventsBackend {
  struct Guard {
    explicit Guard(const at::Device&) {}
  };

  static EventList build(const at::Tensor& s, int64_t max_nnz) {
    EventList e;
    SRC_DTYPE_SWITCH(s.scalar_type(), scalar_t, e = build_typed<scalar_t>(s, max_nnz));
    return e;
  }

  template <typename scalar_t>
  static EventList build_typed(const at::Tensor& s, int64_t max_nnz) {
    const int64_t R = s.size(0), F = s.size(1);
    std::vector<int64_t> counts(R);
    // Several chunks per thread, so that uneven rows (the silent steps of a rate code) share
    // out; but at least kGrain inputs each: a small input is not worth waking threads for.
    const int64_t chunks =
        std::max<int64_t>(1, std::min<int64_t>({R, 8 * at::get_num_threads(), R * F / kGrain}));
    std::vector<Chunk<scalar_t>> c(chunks);
    auto first_row = [&](int64_t k) { return k * R / chunks; };
    auto run_scan = [&](int64_t k, int64_t budget) {
      c[k] = Chunk<scalar_t>{};
      c[k].budget = budget;
      c[k].col.reserve(std::min<int64_t>(budget, int64_t(1) << 16));
      c[k].val.reserve(std::min<int64_t>(budget, int64_t(1) << 16));
      scan_entry<scalar_t>(s.const_data_ptr(), F, first_row(k), first_row(k + 1), counts.data(),
                           c[k]);
    };
    at::parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        // The chunk's share of max_nnz, rounded up.
        const int64_t rows = first_row(k + 1) - first_row(k);
        run_scan(k, R == 0 ? 0 : std::min<int64_t>(rows * F, (max_nnz * rows + R - 1) / R));
      }
    });
    EventList e;
    for (int64_t k = 0; k < chunks; ++k) e.nnz += c[k].count;
    if (e.nnz > max_nnz) return e;  // too dense: only the count
    // Within the budget, but a chunk may have gone over its own share: scan it again, with
    // room for all of its events (it knows how many now).
    at::parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        if (!c[k].complete) run_scan(k, c[k].count);
      }
    });
    e.row_ptr = at::empty({R + 1}, s.options().dtype(at::kLong));
    int64_t* rp = e.row_ptr.data_ptr<int64_t>();
    rp[0] = 0;
    for (int64_t r = 0; r < R; ++r) rp[r + 1] = rp[r] + counts[r];
    e.col = at::empty({e.nnz}, s.options().dtype(at::kLong));
    e.val = at::empty({e.nnz}, s.options());
    int64_t* col = e.col.data_ptr<int64_t>();
    scalar_t* val = static_cast<scalar_t*>(e.val.data_ptr());
    // (A copy of a few MB: in parallel only when larger.)
    at::parallel_for(0, chunks, e.nnz < (int64_t(1) << 20) ? chunks : 1,
                     [&](int64_t k0, int64_t k1) {
                       for (int64_t k = k0; k < k1; ++k) {
                         const int64_t pos = rp[first_row(k)];
                         std::copy(c[k].col.begin(), c[k].col.end(), col + pos);
                         std::copy(c[k].val.begin(), c[k].val.end(), val + pos);
                       }
                     });
    e.built = true;
    return e;
  }

  // (F, H) <-> (tiles, F, kSlice), zero-padded past H: the tiles' layout of the kernels.
  static at::Tensor pack(const void* wt, int64_t F, int64_t H, at::ScalarType acc) {
    const int64_t tiles = (H + kSlice - 1) / kSlice;
    at::Tensor packed = at::zeros({tiles, F, kSlice}, at::TensorOptions().dtype(acc));
    const size_t item = packed.element_size();
    const char* src = static_cast<const char*>(wt);
    char* dst = static_cast<char*>(packed.data_ptr());
    // Serial: a copy of W (a few hundred kB) is not worth a parallel region, whose barrier
    // alone costs milliseconds when the cores are shared.
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t n = std::min<int64_t>(kSlice, H - t * kSlice);
      for (int64_t f = 0; f < F; ++f) {
        std::memcpy(dst + ((t * F + f) * kSlice) * item, src + (f * H + t * kSlice) * item,
                    n * item);
      }
    }
    return packed;
  }

  static void unpack(const at::Tensor& packed, void* wt, int64_t F, int64_t H) {
    const int64_t tiles = packed.size(0);
    const size_t item = packed.element_size();
    const char* src = static_cast<const char*>(packed.const_data_ptr());
    char* dst = static_cast<char*>(wt);
    for (int64_t t = 0; t < tiles; ++t) {  // serial, as pack
      const int64_t n = std::min<int64_t>(kSlice, H - t * kSlice);
      for (int64_t f = 0; f < F; ++f) {
        std::memcpy(dst + (f * H + t * kSlice) * item, src + ((t * F + f) * kSlice) * item,
                    n * item);
      }
    }
  }

  static void matmul(const EventMatmulParams& p, at::ScalarType dtype) {
    void (*fn)(const EventMatmulParams&, const void*, int64_t, int64_t) = nullptr;
    SRC_DTYPE_SWITCH(dtype, scalar_t, fn = &matmul_entry<scalar_t>);
    const at::Tensor packed = pack(p.wt, p.F, p.H, acc_dtype(dtype));
    // Rows per task: enough multiply-adds to be worth a thread.
    const int64_t per_row =
        std::max<int64_t>(1, p.H * std::max<int64_t>(1, p.nnz / std::max<int64_t>(p.R, 1)));
    at::parallel_for(0, p.R, std::max<int64_t>(1, kGrain / per_row),
                     [&](int64_t r0, int64_t r1) { fn(p, packed.const_data_ptr(), r0, r1); });
  }

  static void weight_grad(const at::Tensor& row_ptr, const at::Tensor& col, const at::Tensor& val,
                          const at::Tensor& grad_u, at::Tensor& grad_wt) {
    EventWeightGradParams p{};
    p.R = row_ptr.size(0) - 1;
    p.F = grad_wt.size(0);
    p.H = grad_wt.size(1);
    p.nnz = col.size(0);
    p.ptr = row_ptr.const_data_ptr<int64_t>();
    p.index = col.const_data_ptr<int64_t>();
    p.val = val.const_data_ptr();
    p.grad_u = grad_u.const_data_ptr();
    p.grad_wt = grad_wt.data_ptr();
    void (*fn)(const EventWeightGradParams&, const BlockColumns&, void*, int64_t, int64_t) =
        nullptr;
    SRC_DTYPE_SWITCH(val.scalar_type(), scalar_t, fn = &weight_grad_entry<scalar_t>);
    const int64_t slices = (p.H + kSlice - 1) / kSlice;
    // One slice per task, unless the whole product is too small to be worth a thread.
    const int64_t grain = p.nnz * p.H < kGrain ? slices : 1;
    // The events of each block of rows by column: a counting sort per block (stable: rows stay
    // ascending within a column). A column outside [0, F) (the op refuses them) is dropped.
    const int64_t F = p.F, R = p.R, blocks = (R + kGradRows - 1) / kGradRows;
    std::vector<int64_t> ptr(blocks * (F + 1));
    std::vector<int32_t> rows(p.nnz);
    at::Tensor sorted_val = at::empty({p.nnz}, val.options());
    const size_t item = val.element_size();
    const char* vsrc = static_cast<const char*>(p.val);
    char* vdst = static_cast<char*>(sorted_val.data_ptr());
    // In parallel only when there are many events: a serial pass is cheaper than a barrier.
    at::parallel_for(0, blocks, p.nnz < (int64_t(1) << 20) ? blocks : 1,
                     [&](int64_t b0, int64_t b1) {
                       std::vector<int64_t> next(F);
                       for (int64_t b = b0; b < b1; ++b) {
                         const int64_t r0 = b * kGradRows, r1 = std::min(R, r0 + kGradRows);
                         const int64_t e0 = p.ptr[r0], e1 = p.ptr[r1];
                         int64_t* bp = ptr.data() + b * (F + 1);
                         std::fill(next.begin(), next.end(), 0);
                         for (int64_t e = e0; e < e1; ++e) {
                           const int64_t f = p.index[e];
                           if (f >= 0 && f < F) ++next[f];
                         }
                         bp[0] = e0;
                         for (int64_t f = 0; f < F; ++f) {
                           bp[f + 1] = bp[f] + next[f];
                           next[f] = bp[f];
                         }
                         for (int64_t r = r0; r < r1; ++r) {
                           for (int64_t e = p.ptr[r]; e < p.ptr[r + 1]; ++e) {
                             const int64_t f = p.index[e];
                             if (f < 0 || f >= F) continue;
                             const int64_t at_ = next[f]++;
                             rows[at_] = static_cast<int32_t>(r - r0);
                             std::memcpy(vdst + at_ * item, vsrc + e * item, item);
                           }
                         }
                       }
                     });
    BlockColumns bc;
    bc.blocks = blocks;
    bc.ptr = ptr.data();
    bc.row = rows.data();
    bc.val = sorted_val.const_data_ptr();
    at::Tensor packed = at::zeros({slices, p.F, kSlice}, grad_wt.options());
    at::parallel_for(0, slices, grain,
                     [&](int64_t s0, int64_t s1) { fn(p, bc, packed.data_ptr(), s0, s1); });
    unpack(packed, p.grad_wt, p.F, p.H);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(srcext, CPU, m) {
  m.impl("src_events", &src_events_op<CpuEventsBackend>);
  m.impl("src_event_matmul", &src_event_matmul_op<CpuEventsBackend>);
  m.impl("src_event_weight_grad", &src_event_weight_grad_op<CpuEventsBackend>);
  m.impl("src_projection", &src_projection_op<CpuEventsBackend>);
  m.impl("src_projection_weight_grad", &src_projection_weight_grad_op<CpuEventsBackend>);
}

}  // namespace cpu
}  // namespace srcext
