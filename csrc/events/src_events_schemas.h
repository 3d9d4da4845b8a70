// src_events_schemas.h — the event-driven input projection: op schemas (written once; defined in the
// srcext namespace by csrc/common/src_library.cpp and again by the CUDA host emulation) and
// the plain params structs the backends' kernels read.
//
// An event list is the CSR form of a 2-D input s (R, F), R = T * B rows of time-major input:
// row_ptr (R + 1,) int64, col (nnz,) int64 ascending within each row, val (nnz,) the non-zero
// values (any value, not only 1: SRC's own spikes are analog pulses).
#pragma once

#include <cstdint>

namespace srcext {

// The CSR of s (R, F) in one pass that also counts (row_ptr[R] is the number of events).
constexpr const char* kEventsSchema =
    "src_events(Tensor s) -> (Tensor row_ptr, Tensor col, Tensor val)";

// u = S W^T (R, H) from the events of S and weight (H, F), gathering rows of W^T.
constexpr const char* kEventMatmulSchema =
    "src_event_matmul(Tensor row_ptr, Tensor col, Tensor val, Tensor weight) -> Tensor";

// grad_weight = grad_u^T S (H, F) from the events of S (R, F) and grad_u (R, H); reduced
// in a fixed order (no float atomics): bitwise the same run to run.
constexpr const char* kEventWeightGradSchema =
    "src_event_weight_grad(Tensor row_ptr, Tensor col, Tensor val, Tensor grad_u, "
    "int num_inputs) -> Tensor";

// u = s W^T for a dense s (R, F): the events of s are built (and counted) first; when more
// than max_density * R * F of s are non-zero the dense GEMM runs instead. Returns u and the
// number of events (a 0-dim int64), so that measuring the density costs nothing extra.
constexpr const char* kProjectionSchema =
    "src_projection(Tensor s, Tensor weight, float max_density) -> (Tensor, Tensor)";

// The weight gradient of src_projection, by the same rule (the events are rebuilt from s, so
// that every output of the pair has a static shape, as torch.compile wants).
constexpr const char* kProjectionWeightGradSchema =
    "src_projection_weight_grad(Tensor grad_u, Tensor s, float max_density) -> Tensor";

// ---- params of the kernels -------------------------------------------------------------------

// Building the events of a dense s (R, F), contiguous (CUDA: a count pass, then a fill pass).
struct EventsBuildParams {
  int64_t R, F;
  const void* s;
  int64_t* row_ptr;  // (R + 1,): the count pass writes row r's count at r + 1
  int64_t* col;  // (nnz,), written by the fill pass
  void* val;  // (nnz,) in s's dtype
};

// u (R, H) in the storage dtype = events (R, F) @ wt (F, H), wt in the math dtype.
struct EventMatmulParams {
  int64_t R, F, H, nnz;
  const int64_t* row_ptr;
  const int64_t* col;
  const void* val;  // storage dtype
  const void* wt;  // (F, H) math dtype (float, or double for float64)
  void* u;  // (R, H) storage dtype
};

// grad_wt (F, H) in the math dtype = events^T (F, R) @ grad_u (R, H).
// CPU: from the CSR (row_ptr, col, val). CUDA: from the CSC (col_ptr, row, val) of the same
// events, built from the CSR by a stable sort (rows stay ascending within each column).
struct EventWeightGradParams {
  int64_t R, F, H, nnz;
  const int64_t* ptr;  // CSR row_ptr (R + 1,) or CSC col_ptr (F + 1,)
  const int64_t* index;  // CSR col or CSC row, (nnz,)
  const void* val;  // (nnz,) storage dtype
  const void* grad_u;  // (R, H) storage dtype, contiguous
  void* grad_wt;  // (F, H) math dtype
};

}  // namespace srcext
