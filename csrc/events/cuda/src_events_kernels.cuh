// src_events_kernels.cuh — CUDA kernels of the event-driven projection (csrc/events/src_events_ops.h),
// instantiated per dtype in src_events_cuda_types.cu.
//
// Every thread computes its own outputs from its own inputs: no shared memory, barriers,
// warp intrinsics or atomics, so the sums run in one fixed order (bitwise reproducible) and
// the host emulation (tests/emulation) runs the kernels exactly.
//   count / fill:  one thread per row of s (R, F): its number of non-zeros, then (at the
//                  offsets of the prefix sum, done by ATen in between) their columns and values.
//   matmul:        one thread per (row r, column h) of u: the sum over row r's events of
//                  v * W^T[f, h]; the block's threads share r, so the event loads broadcast
//                  and the W^T loads coalesce.
//   weight_grad:   one thread per (input f, column h) of grad_wt: the sum over column f's
//                  events (a CSC, rows ascending) of v * grad_u[r, h]; loads coalesce over h.
// Indices read from an event list are clamped, so that a bad list cannot read or write out of
// bounds (the op checks the list on the CPU only).
#pragma once

#include <cuda_runtime.h>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "../../common/src_switch.h"
#include "../src_events_schemas.h"
#include "src_events_cuda_launch.h"
#include "../../common/src_launch_kernel.cuh"

namespace srcext {
namespace cuda {

template <typename scalar_t>
__device__ __forceinline__ bool event_nonzero(scalar_t x) {
  return static_cast<float>(x) != 0.0f;
}
template <>
__device__ __forceinline__ bool event_nonzero<double>(double x) {
  return x != 0.0;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kEventThreads) event_count_kernel(EventsBuildParams p) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= p.R) return;
  const scalar_t* row = static_cast<const scalar_t*>(p.s) + r * p.F;
  int64_t n = 0;
  for (int64_t f = 0; f < p.F; ++f) n += event_nonzero(row[f]);
  p.row_ptr[r + 1] = n;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kEventThreads) event_fill_kernel(EventsBuildParams p) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= p.R) return;
  const scalar_t* row = static_cast<const scalar_t*>(p.s) + r * p.F;
  auto* val = static_cast<scalar_t*>(p.val);
  int64_t e = p.row_ptr[r];
  for (int64_t f = 0; f < p.F; ++f) {
    const scalar_t x = row[f];
    if (event_nonzero(x)) {
      p.col[e] = f;
      val[e] = x;
      ++e;
    }
  }
}

template <typename scalar_t, typename Acc>
__global__ void __launch_bounds__(kEventThreads) event_matmul_kernel(EventMatmulParams p) {
  const int64_t r = blockIdx.x;
  const int64_t h = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (r >= p.R || h >= p.H) return;
  const auto* val = static_cast<const scalar_t*>(p.val);
  const auto* wt = static_cast<const Acc*>(p.wt);
  const int64_t e0 = p.row_ptr[r] < 0 ? 0 : p.row_ptr[r];
  const int64_t e1 = p.row_ptr[r + 1] > p.nnz ? p.nnz : p.row_ptr[r + 1];
  Acc acc = 0;
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t f = p.col[e];
    if (f < 0 || f >= p.F) continue;
    acc += static_cast<Acc>(val[e]) * wt[f * p.H + h];
  }
  static_cast<scalar_t*>(p.u)[r * p.H + h] = static_cast<scalar_t>(acc);
}

template <typename scalar_t, typename Acc>
__global__ void __launch_bounds__(kEventThreads) event_weight_grad_kernel(EventWeightGradParams p) {
  const int64_t f = blockIdx.x;
  const int64_t h = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (f >= p.F || h >= p.H) return;
  const auto* val = static_cast<const scalar_t*>(p.val);
  const auto* g = static_cast<const scalar_t*>(p.grad_u);
  const int64_t e0 = p.ptr[f] < 0 ? 0 : p.ptr[f];
  const int64_t e1 = p.ptr[f + 1] > p.nnz ? p.nnz : p.ptr[f + 1];
  Acc acc = 0;
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t r = p.index[e];
    if (r < 0 || r >= p.R) continue;
    acc += static_cast<Acc>(val[e]) * static_cast<Acc>(g[r * p.H + h]);
  }
  static_cast<Acc*>(p.grad_wt)[f * p.H + h] = acc;
}

inline unsigned event_blocks(int64_t n) {
  return static_cast<unsigned>((n + kEventThreads - 1) / kEventThreads);
}

template <typename scalar_t>
void launch_event_count(const EventsBuildParams& p, cudaStream_t stream) {
  launch_kernel<&event_count_kernel<scalar_t>>(dim3(event_blocks(p.R)), dim3(kEventThreads), stream,
                                               p);
}

template <typename scalar_t>
void launch_event_fill(const EventsBuildParams& p, cudaStream_t stream) {
  launch_kernel<&event_fill_kernel<scalar_t>>(dim3(event_blocks(p.R)), dim3(kEventThreads), stream,
                                              p);
}

template <typename scalar_t>
void launch_event_matmul(const EventMatmulParams& p, cudaStream_t stream) {
  launch_kernel<&event_matmul_kernel<scalar_t, acc_t<scalar_t>>>(
      dim3(static_cast<unsigned>(p.R), event_blocks(p.H)), dim3(kEventThreads), stream, p);
}

template <typename scalar_t>
void launch_event_weight_grad(const EventWeightGradParams& p, cudaStream_t stream) {
  launch_kernel<&event_weight_grad_kernel<scalar_t, acc_t<scalar_t>>>(
      dim3(static_cast<unsigned>(p.F), event_blocks(p.H)), dim3(kEventThreads), stream, p);
}

}  // namespace cuda
}  // namespace srcext

// The launchers of one storage type (declared in src_events_cuda_launch.h).
#define SRCEXT_EVENTS_INSTANTIATE(scalar_t)                                                   \
  template void srcext::cuda::launch_event_count<scalar_t>(const srcext::EventsBuildParams&,  \
                                                           cudaStream_t);                     \
  template void srcext::cuda::launch_event_fill<scalar_t>(const srcext::EventsBuildParams&,   \
                                                          cudaStream_t);                      \
  template void srcext::cuda::launch_event_matmul<scalar_t>(const srcext::EventMatmulParams&, \
                                                            cudaStream_t);                    \
  template void srcext::cuda::launch_event_weight_grad<scalar_t>(                             \
      const srcext::EventWeightGradParams&, cudaStream_t);
