// src_events_ops.h — the event-driven projection ops as registered (schemas in
// src_events_schemas.h), shared by the CPU and CUDA backends: argument checks, allocation, the
// dense-or-events dispatch. A backend supplies a struct with
//   Guard                                   (device guard, constructed from the device),
//   static EventList build(s, max_nnz)      (count the non-zeros of s (R, F) and, when there
//                                            are at most max_nnz, build their CSR),
//   static void matmul(params, dtype)       (u = events @ wt),
//   static void weight_grad(row_ptr, col, val, grad_u, grad_wt)  (grad_wt += events^T grad_u,
//                                            grad_wt (F, H) zero on entry, math dtype),
// and registers the five op functions below for it.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <tuple>

#include "src_events_schemas.h"
#include "../recurrence/src_recurrence_ops.h"

namespace srcext {

// What a backend's build returns: the CSR, or (built = false) only the count, when there are
// more than max_nnz events.
struct EventList {
  at::Tensor row_ptr, col, val;
  int64_t nnz = 0;
  bool built = false;
};

inline void check_dense_events_input(const at::Tensor& s, const char* name) {
  TORCH_CHECK_VALUE(s.layout() == at::kStrided, "srcext: ", name, " must be a dense tensor");
  TORCH_CHECK_VALUE(s.dim() == 2, "srcext: ", name, " must be 2-D (R, F) = (T * B, inputs), got ",
                    s.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(s.scalar_type()), "srcext: ", name,
                   " must be floating point, got ", s.scalar_type());
}

inline void check_weight(const at::Tensor& weight, const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK_VALUE(weight.dim() == 2, "srcext: weight must be 2-D (H, F), got ", weight.sizes());
  TORCH_CHECK_VALUE(weight.device() == ref.device(), "srcext: weight is on ", weight.device(),
                    " but ", ref_name, " is on ", ref.device());
  TORCH_CHECK_TYPE(weight.scalar_type() == ref.scalar_type(), "srcext: weight has dtype ",
                   weight.scalar_type(), " but ", ref_name, " has ", ref.scalar_type());
}

// An event list's structure. Its values (row_ptr ascending from 0 to nnz, col in [0, F)) are
// checked on the CPU only: on a GPU that would cost a device sync, and the kernels clamp
// instead, so that no value can make them read or write out of bounds.
inline int64_t check_event_list(const at::Tensor& row_ptr, const at::Tensor& col,
                                const at::Tensor& val, int64_t F) {
  TORCH_CHECK_TYPE(row_ptr.scalar_type() == at::kLong && col.scalar_type() == at::kLong,
                   "srcext: the event list's row_ptr and col must be int64, got ",
                   row_ptr.scalar_type(), " and ", col.scalar_type());
  TORCH_CHECK_TYPE(at::isFloatingType(val.scalar_type()),
                   "srcext: the event list's val must be floating point, got ", val.scalar_type());
  TORCH_CHECK_VALUE(row_ptr.dim() == 1 && row_ptr.size(0) >= 1,
                    "srcext: row_ptr must be 1-D (R + 1,), got ", row_ptr.sizes());
  TORCH_CHECK_VALUE(col.dim() == 1 && val.dim() == 1 && col.size(0) == val.size(0),
                    "srcext: col and val must be 1-D of one length (nnz,), got ", col.sizes(),
                    " and ", val.sizes());
  TORCH_CHECK_VALUE(row_ptr.device() == val.device() && col.device() == val.device(),
                    "srcext: row_ptr (", row_ptr.device(), "), col (", col.device(), ") and val (",
                    val.device(), ") must be on one device");
  const int64_t R = row_ptr.size(0) - 1, nnz = col.size(0);
  if (row_ptr.is_cpu()) {
    const at::Tensor rp = row_ptr.contiguous(), c = col.contiguous();
    const int64_t* p = rp.const_data_ptr<int64_t>();
    TORCH_CHECK_VALUE(p[0] == 0 && p[R] == nnz, "srcext: row_ptr must run from 0 to nnz = ", nnz,
                      ", got ", p[0], " to ", p[R]);
    for (int64_t r = 0; r < R; ++r) {
      TORCH_CHECK_VALUE(p[r] <= p[r + 1], "srcext: row_ptr must be non-decreasing (row ", r, ")");
    }
    if (nnz > 0) {
      const auto [lo, hi] = at::aminmax(c);
      const int64_t l = lo.item<int64_t>(), h = hi.item<int64_t>();
      TORCH_CHECK_VALUE(l >= 0 && h < F, "srcext: col must lie in [0, F) = [0, ", F,
                        "), got values in [", l, ", ", h, "]");
    }
  }
  return R;
}

inline int64_t max_events(double max_density, int64_t R, int64_t F) {
  TORCH_CHECK_VALUE(std::isfinite(max_density) && max_density >= 0.0,
                    "srcext: max_density must be a finite number >= 0, got ", max_density);
  const double cap = max_density * static_cast<double>(R) * static_cast<double>(F);
  return cap >= static_cast<double>(R * F) ? R * F : static_cast<int64_t>(cap);
}

template <typename Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor> src_events_op(const at::Tensor& s) {
  check_dense_events_input(s, "s");
  const typename Backend::Guard guard(s.device());
  const at::Tensor sc = s.contiguous();
  EventList e = Backend::build(sc, sc.size(0) * sc.size(1));
  TORCH_INTERNAL_ASSERT(e.built);
  return {e.row_ptr, e.col, e.val};
}

template <typename Backend>
at::Tensor event_matmul(const at::Tensor& row_ptr, const at::Tensor& col, const at::Tensor& val,
                        const at::Tensor& weight, int64_t R) {
  const int64_t H = weight.size(0), F = weight.size(1);
  at::Tensor u = at::empty({R, H}, val.options());
  if (R * H == 0) return u;
  // W^T (F, H) in the math dtype: each event adds one contiguous row of it.
  const at::Tensor wt = weight.t().to(acc_dtype(weight.scalar_type())).contiguous();
  EventMatmulParams p{};
  p.R = R;
  p.F = F;
  p.H = H;
  p.nnz = col.size(0);
  p.row_ptr = row_ptr.const_data_ptr<int64_t>();
  p.col = col.const_data_ptr<int64_t>();
  p.val = val.const_data_ptr();
  p.wt = wt.const_data_ptr();
  p.u = u.data_ptr();
  Backend::matmul(p, val.scalar_type());
  return u;
}

template <typename Backend>
at::Tensor event_weight_grad(const at::Tensor& row_ptr, const at::Tensor& col,
                             const at::Tensor& val, const at::Tensor& grad_u, int64_t F) {
  const int64_t H = grad_u.size(1);
  at::Tensor grad_wt = at::zeros({F, H}, grad_u.options().dtype(acc_dtype(grad_u.scalar_type())));
  if (F * H > 0 && col.size(0) > 0) {
    Backend::weight_grad(row_ptr, col, val, grad_u.contiguous(), grad_wt);
  }
  return grad_wt.t().to(grad_u.scalar_type()).contiguous();  // (H, F), as the weight
}

template <typename Backend>
at::Tensor src_event_matmul_op(const at::Tensor& row_ptr, const at::Tensor& col,
                               const at::Tensor& val, const at::Tensor& weight) {
  check_weight(weight, val, "val");
  const typename Backend::Guard guard(val.device());
  const int64_t R = check_event_list(row_ptr, col, val, weight.size(1));
  return event_matmul<Backend>(row_ptr.contiguous(), col.contiguous(), val.contiguous(), weight, R);
}

template <typename Backend>
at::Tensor src_event_weight_grad_op(const at::Tensor& row_ptr, const at::Tensor& col,
                                    const at::Tensor& val, const at::Tensor& grad_u,
                                    int64_t num_inputs) {
  TORCH_CHECK_VALUE(num_inputs >= 0, "srcext: num_inputs must be >= 0, got ", num_inputs);
  const int64_t R = check_event_list(row_ptr, col, val, num_inputs);
  TORCH_CHECK_VALUE(grad_u.dim() == 2 && grad_u.size(0) == R,
                    "srcext: grad_u must be (R, H) "
                    "with R = ",
                    R, " rows (one per row of the event list), got ", grad_u.sizes());
  TORCH_CHECK_VALUE(grad_u.device() == val.device(), "srcext: grad_u is on ", grad_u.device(),
                    " but val is on ", val.device());
  TORCH_CHECK_TYPE(grad_u.scalar_type() == val.scalar_type(), "srcext: grad_u has dtype ",
                   grad_u.scalar_type(), " but val has ", val.scalar_type());
  const typename Backend::Guard guard(val.device());
  return event_weight_grad<Backend>(row_ptr.contiguous(), col.contiguous(), val.contiguous(),
                                    grad_u, num_inputs);
}

template <typename Backend>
std::tuple<at::Tensor, at::Tensor> src_projection_op(const at::Tensor& s, const at::Tensor& weight,
                                                     double max_density) {
  check_dense_events_input(s, "s");
  check_weight(weight, s, "s");
  TORCH_CHECK_VALUE(weight.size(1) == s.size(1), "srcext: weight (H, F) = ", weight.sizes(),
                    " does not match the F = ", s.size(1), " inputs of s");
  const typename Backend::Guard guard(s.device());
  const int64_t R = s.size(0), F = s.size(1);
  const at::Tensor sc = s.contiguous();
  EventList e = Backend::build(sc, max_events(max_density, R, F));
  at::Tensor count = at::scalar_tensor(e.nnz, s.options().dtype(at::kLong));
  if (!e.built) return {at::mm(sc, weight.t()), count};  // too dense: the GEMM is faster
  return {event_matmul<Backend>(e.row_ptr, e.col, e.val, weight, R), count};
}

template <typename Backend>
at::Tensor src_projection_weight_grad_op(const at::Tensor& grad_u, const at::Tensor& s,
                                         double max_density) {
  check_dense_events_input(s, "s");
  TORCH_CHECK_VALUE(grad_u.dim() == 2 && grad_u.size(0) == s.size(0),
                    "srcext: grad_u must be "
                    "(R, H) with the R = ",
                    s.size(0), " rows of s, got ", grad_u.sizes());
  TORCH_CHECK_VALUE(grad_u.device() == s.device(), "srcext: grad_u is on ", grad_u.device(),
                    " but s is on ", s.device());
  TORCH_CHECK_TYPE(grad_u.scalar_type() == s.scalar_type(), "srcext: grad_u has dtype ",
                   grad_u.scalar_type(), " but s has ", s.scalar_type());
  const typename Backend::Guard guard(s.device());
  const int64_t R = s.size(0), F = s.size(1);
  const at::Tensor sc = s.contiguous();
  EventList e = Backend::build(sc, max_events(max_density, R, F));
  if (!e.built) return at::mm(grad_u.t(), sc);
  return event_weight_grad<Backend>(e.row_ptr, e.col, e.val, grad_u, F);
}

}  // namespace srcext
