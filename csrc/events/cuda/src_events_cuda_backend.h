// src_events_cuda_backend.h — the CUDA backend of the event-driven projection ops (the part
// csrc/events/src_events_ops.h asks of a backend), over a Runtime (device guard, current stream,
// launch check, whether the stream is being captured into a CUDA graph): the CUDA runtime in
// src_events_cuda.cpp, the host emulation in tests/emulation/src_events_emulation.cpp.
// The prefix sum, the event count (one device sync, to size the list) and the CSR -> CSC
// transpose of the weight gradient are ATen ops.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "../../common/src_switch.h"
#include "../src_events_ops.h"
#include "src_events_cuda_launch.h"

namespace srcext {
namespace cuda {

// The event count and the row of each event are read on the host (a device sync), which a
// CUDA graph cannot capture: say so, rather than let the capture fail on the sync.
template <typename Runtime>
void check_not_capturing(const char* what) {
  TORCH_CHECK(!Runtime::capturing(), "srcext: ", what,
              " reads the number of events on the host (a device sync), which a CUDA graph "
              "cannot capture; under CUDA graphs (torch.compile(mode=\"reduce-overhead\"), "
              "torch.cuda.graph) use input_projection=\"dense\" or \"auto\" (the GEMM on a GPU)");
}

inline void check_event_grid(int64_t blocks_x, int64_t H) {
  TORCH_CHECK(blocks_x <= int64_t(INT32_MAX) && (H + kEventThreads - 1) / kEventThreads <= 65535,
              "srcext: ", blocks_x, " rows and H = ", H, " are more than one CUDA launch can hold");
}

template <typename Runtime>
struct CudaEventsBackend {
  using Guard = typename Runtime::Guard;

  static EventList build(const at::Tensor& s, int64_t max_nnz) {
    check_not_capturing<Runtime>("building the events of a dense input");
    const int64_t R = s.size(0), F = s.size(1);
    EventList e;
    e.row_ptr = at::zeros({R + 1}, s.options().dtype(at::kLong));
    EventsBuildParams p{};
    p.R = R;
    p.F = F;
    p.s = s.const_data_ptr();
    p.row_ptr = e.row_ptr.data_ptr<int64_t>();
    const auto dtype = s.scalar_type();
    if (R > 0 && F > 0) {
      check_event_grid((R + kEventThreads - 1) / kEventThreads, 1);
      SRC_DTYPE_SWITCH(dtype, scalar_t, launch_event_count<scalar_t>(p, Runtime::stream()));
      Runtime::check_launch();
      at::Tensor counts = e.row_ptr.slice(0, 1);
      counts.copy_(counts.cumsum(0));
    }
    e.nnz = e.row_ptr[R].item<int64_t>();
    if (e.nnz > max_nnz) return e;
    e.col = at::empty({e.nnz}, s.options().dtype(at::kLong));
    e.val = at::empty({e.nnz}, s.options());
    if (e.nnz > 0) {
      p.col = e.col.data_ptr<int64_t>();
      p.val = e.val.data_ptr();
      SRC_DTYPE_SWITCH(dtype, scalar_t, launch_event_fill<scalar_t>(p, Runtime::stream()));
      Runtime::check_launch();
    }
    e.built = true;
    return e;
  }

  static void matmul(const EventMatmulParams& p, at::ScalarType dtype) {
    check_event_grid(p.R, p.H);
    SRC_DTYPE_SWITCH(dtype, scalar_t, launch_event_matmul<scalar_t>(p, Runtime::stream()));
    Runtime::check_launch();
  }

  static void weight_grad(const at::Tensor& row_ptr, const at::Tensor& col, const at::Tensor& val,
                          const at::Tensor& grad_u, at::Tensor& grad_wt) {
    check_not_capturing<Runtime>("the weight gradient from events");
    const int64_t R = row_ptr.size(0) - 1, F = grad_wt.size(0), H = grad_wt.size(1);
    const int64_t nnz = col.size(0);
    // The CSC of the events: a stable sort by column keeps the rows ascending in each column,
    // so that every sum below runs in row order. A column outside [0, F) (the op checks them
    // on the CPU only) sorts before col_ptr[0] or after col_ptr[F]: no thread reads it.
    // The row of each event. Its size costs a device sync, and checks on the host, without
    // reading the list, that row_ptr accounts for every event (the op checks the list's
    // values on the CPU only).
    const at::Tensor rows = at::repeat_interleave(row_ptr.diff().clamp_min(0));
    TORCH_CHECK_VALUE(rows.size(0) == nnz, "srcext: row_ptr counts ", rows.size(0),
                      " events but col and val hold ", nnz);
    const auto sorted = at::sort(col, /*stable=*/true, 0, false);
    const at::Tensor& csc_col = std::get<0>(sorted);
    const at::Tensor& perm = std::get<1>(sorted);
    const at::Tensor csc_row = rows.index_select(0, perm);
    const at::Tensor csc_val = val.index_select(0, perm);
    const at::Tensor col_ptr = at::searchsorted(csc_col, at::arange(F + 1, col.options()));
    check_event_grid(F, H);
    EventWeightGradParams p{};
    p.R = R;
    p.F = F;
    p.H = H;
    p.nnz = nnz;
    p.ptr = col_ptr.const_data_ptr<int64_t>();
    p.index = csc_row.const_data_ptr<int64_t>();
    p.val = csc_val.const_data_ptr();
    p.grad_u = grad_u.const_data_ptr();
    p.grad_wt = grad_wt.data_ptr();
    SRC_DTYPE_SWITCH(val.scalar_type(), scalar_t,
                     launch_event_weight_grad<scalar_t>(p, Runtime::stream()));
    Runtime::check_launch();
  }
};

}  // namespace cuda
}  // namespace srcext
