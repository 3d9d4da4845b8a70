// src_cuda.cpp — the CUDA dispatch of the srcext ops: device guard, current stream, a
// checked launch of the kernel for the input's dtype.
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../src_ops.h"
#include "src_cuda_launch.h"

namespace srcext {
namespace cuda {
namespace {

ForwardResult src_forward_cuda(const Tensor& u, const Tensor& bias, const Tensor& i0,
                               const Tensor& h0, const Tensor& hs0, double alpha, double rho,
                               double r, double r_s, double z, double z_hyp, double z_dep,
                               double gate_slope, double gate_threshold, bool detach_recurrent,
                               bool straight_through, bool save_for_backward) {
  (void)detach_recurrent;  // used by the autograd formula (srcext/ops.py), not the forward
  (void)straight_through;
  const c10::cuda::CUDAGuard guard(u.device());
  const auto k = make_constants(alpha, rho, r, r_s, z, z_hyp, z_dep, gate_slope, gate_threshold);
  return src_forward_common(
      u, bias, i0, h0, hs0, k, save_for_backward, [&](const ForwardParams& p, at::ScalarType dt) {
        TORCH_CHECK(p.N <= int64_t(INT32_MAX) * 256, "srcext: too many neurons (B * H) for one launch");
        const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
        switch (dt) {
          case at::kFloat: forward_f32(p, save_for_backward, stream); break;
          case at::kDouble: forward_f64(p, save_for_backward, stream); break;
          case at::kBFloat16: forward_bf16(p, save_for_backward, stream); break;
          case at::kHalf: forward_f16(p, save_for_backward, stream); break;
          default: TORCH_CHECK(false, "srcext: unsupported dtype ", dt);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

BackwardResult src_backward_cuda(const Tensor& grad_spikes, const Tensor& grad_i_n,
                                 const Tensor& grad_h_n, const Tensor& grad_hs_n,
                                 const Tensor& u, const Tensor& bias, const Tensor& checkpoints,
                                 double alpha, double rho, double r, double r_s, double z,
                                 double z_hyp, double z_dep, double gate_slope,
                                 double gate_threshold, bool detach_recurrent,
                                 bool straight_through) {
  const c10::cuda::CUDAGuard guard(grad_spikes.device());
  const auto k = make_constants(alpha, rho, r, r_s, z, z_hyp, z_dep, gate_slope, gate_threshold);
  return src_backward_common(
      grad_spikes, grad_i_n, grad_h_n, grad_hs_n, u, bias, checkpoints, k, detach_recurrent,
      straight_through, [&](const BackwardParams& p, at::ScalarType dt, bool detach, bool st) {
        TORCH_CHECK(p.N <= int64_t(INT32_MAX) * 256, "srcext: too many neurons (B * H) for one launch");
        const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
        switch (dt) {
          case at::kFloat: backward_f32(p, detach, st, stream); break;
          case at::kDouble: backward_f64(p, detach, st, stream); break;
          case at::kBFloat16: backward_bf16(p, detach, st, stream); break;
          case at::kHalf: backward_f16(p, detach, st, stream); break;
          default: TORCH_CHECK(false, "srcext: unsupported dtype ", dt);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(srcext, CUDA, m) {
  m.impl("src_forward", &src_forward_cuda);
  m.impl("src_backward", &src_backward_cuda);
}

}  // namespace cuda
}  // namespace srcext
