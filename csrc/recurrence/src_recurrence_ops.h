// src_recurrence_ops.h — the srcext ops as registered, shared by the CPU and CUDA backends:
// argument checks, output allocation, the params structs. A backend supplies only a struct with
//   Guard                                  (device guard, constructed from the device),
//   static Tensor empty(sizes, options)    (allocation of the large (T, B, H) outputs),
//   static void forward(params, dtype, save_for_backward),
//   static void backward(params, dtype, detach_recurrent, straight_through),
// (the params say whether the constants are per neuron and whether their gradients are
// wanted: csrc/recurrence/src_recurrence_params.h),
// and registers src_forward_op<Backend> and src_backward_op<Backend>.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <tuple>

#include "src_recurrence_params.h"

namespace srcext {

using at::Tensor;
using ForwardResult = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>;
using BackwardResult = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

// The math (and saved-trace) precision for a storage dtype.
inline at::ScalarType acc_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_same(const Tensor& ref, const Tensor& t, const char* name) {
  TORCH_CHECK(t.device() == ref.device(), "srcext: ", name, " is on ", t.device(), " but u is on ",
              ref.device());
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), "srcext: ", name, " has dtype ",
              t.scalar_type(), " but u has ", ref.scalar_type());
}

inline void check_state(const Tensor& u, const Tensor& s, const char* name) {
  check_same(u, s, name);
  TORCH_CHECK(s.dim() == 2 && s.size(0) == u.size(1) && s.size(1) == u.size(2), "srcext: ", name,
              " must have shape (B, H) = (", u.size(1), ", ", u.size(2), "), got ", s.sizes());
}

// The optional per-sample lengths as the kernels read them: int64, contiguous, on u's device;
// undefined when absent. The values must lie in [0, T]; they are checked here only on the CPU
// (on a GPU that would need a device sync), and the kernels clamp them, so that no value can
// make them read or write out of bounds.
inline Tensor checked_lengths(const std::optional<Tensor>& lengths, const Tensor& u) {
  if (!lengths.has_value() || !lengths->defined()) return Tensor();
  const Tensor& l = *lengths;
  const int64_t T = u.size(0), B = u.size(1);
  TORCH_CHECK_TYPE(l.scalar_type() == at::kInt || l.scalar_type() == at::kLong,
                   "srcext: lengths must have dtype int32 or int64, got ", l.scalar_type());
  TORCH_CHECK_VALUE(l.dim() == 1 && l.size(0) == B, "srcext: lengths must have shape (B,) = (", B,
                    ",), got ", l.sizes());
  TORCH_CHECK_VALUE(l.device() == u.device(), "srcext: lengths is on ", l.device(), " but u is on ",
                    u.device());
  Tensor l64 = l.to(at::kLong).contiguous();
  if (l64.is_cpu() && B > 0) {
    const int64_t* v = l64.const_data_ptr<int64_t>();
    const auto [lo, hi] = std::minmax_element(v, v + B);
    TORCH_CHECK_VALUE(*lo >= 0 && *hi <= T, "srcext: lengths must lie in [0, T] = [0, ", T,
                      "], got values in [", *lo, ", ", *hi, "]");
  }
  return l64;
}

// The constants (src_constants.h) checked, and how the kernels read them (ConstantsRef): a
// tensor, per layer (K,) or per neuron (K, H), in the math's precision, on the CPU or on u's
// device; or, where there is none, the K per-layer values as floats (layer_values). The
// tensor returned must outlive the launch. per_neuron: read them per neuron even when they
// are per layer on the host (the kernels compute the constants' gradients only so).
inline std::pair<Tensor, ConstantsRef> checked_constants(const std::optional<Tensor>& constants,
                                                         c10::ArrayRef<double> layer_values,
                                                         const Tensor& u, bool per_neuron = false) {
  const int64_t H = u.size(2);
  const auto acc = acc_dtype(u.scalar_type());
  const bool have_tensor = constants.has_value() && constants->defined();
  TORCH_CHECK_VALUE(have_tensor != !layer_values.empty(),
                    "srcext: give the cell constants either as the constants tensor or as "
                    "layer_constants (K = ",
                    int(kNumConstants), " floats), ", have_tensor ? "not both" : "got neither");
  if (!have_tensor) {
    TORCH_CHECK_VALUE(layer_values.size() == size_t(kNumConstants),
                      "srcext: layer_constants must hold K = ", int(kNumConstants), " values, got ",
                      layer_values.size());
    TORCH_CHECK_VALUE(!per_neuron, "srcext: constants given as layer_constants have no gradient");
    // On the host, as a per-layer tensor would be: the kernels take them once per launch.
    // Filled in place (one small allocation: this runs on every call of a step-by-step loop).
    Tensor t = at::empty({kNumConstants}, at::TensorOptions().dtype(acc));
    if (acc == at::kDouble) {
      std::copy(layer_values.begin(), layer_values.end(), t.data_ptr<double>());
    } else {  // rounded to float as a float32 tensor of the same values would be
      std::transform(layer_values.begin(), layer_values.end(), t.data_ptr<float>(),
                     [](double v) { return static_cast<float>(v); });
    }
    return {t, ConstantsRef{t.data_ptr(), 1, 0, false}};
  }
  const Tensor& k = *constants;
  TORCH_CHECK_TYPE(k.scalar_type() == acc, "srcext: constants must have dtype ", acc,
                   " (the precision of the math for ", u.scalar_type(), " inputs), got ",
                   k.scalar_type());
  TORCH_CHECK_VALUE((k.dim() == 1 && k.size(0) == kNumConstants) ||
                        (k.dim() == 2 && k.size(0) == kNumConstants && k.size(1) == H),
                    "srcext: constants must have shape (K,) = (", int(kNumConstants),
                    ",) (per layer) or (K, H) = (", int(kNumConstants), ", ", H,
                    ") (per neuron), got ", k.sizes());
  TORCH_CHECK_VALUE(k.is_cpu() || k.device() == u.device(), "srcext: constants are on ", k.device(),
                    " but u is on ", u.device(),
                    " (they may be on either the CPU "
                    "or u's device)");
  if (k.dim() == 1 && k.is_cpu() && !per_neuron) {
    // One value per layer, readable on the host: the kernels take them once per launch.
    const Tensor t = k.contiguous();
    return {t, ConstantsRef{t.data_ptr(), 1, 0, false}};
  }
  // Otherwise read per neuron on u's device, through the strides: per-layer values on a GPU
  // as a stride-0 view (no sync to read them on the host), an expanded (K, H) view uncopied.
  Tensor t = k.to(u.device());
  if (t.dim() == 1) t = t.unsqueeze(1).expand({kNumConstants, H});
  return {t, ConstantsRef{t.data_ptr(), t.stride(0), t.stride(1), true}};
}

inline const int64_t* lengths_ptr(const Tensor& l64) {
  return l64.defined() ? l64.const_data_ptr<int64_t>() : nullptr;
}

template <typename Backend>
ForwardResult src_forward_op(const Tensor& u, const Tensor& bias, const Tensor& i0,
                             const Tensor& h0, const Tensor& hs0,
                             const std::optional<Tensor>& constants, bool detach_recurrent,
                             bool straight_through, bool save_for_backward,
                             const std::optional<Tensor>& lengths,
                             c10::ArrayRef<double> layer_constants, bool emit_voltage) {
  (void)detach_recurrent;  // used by the autograd (src_recurrence_autograd.h), not the forward
  (void)straight_through;
  const typename Backend::Guard guard(u.device());
  TORCH_CHECK(u.dim() == 3, "srcext: u must be (T, B, H), got ", u.sizes());
  TORCH_CHECK(at::isFloatingType(u.scalar_type()), "srcext: u must be floating point, got ",
              u.scalar_type());
  check_same(u, bias, "bias");
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == u.size(2), "srcext: bias must be (H,) = (",
              u.size(2), ",), got ", bias.sizes());
  check_state(u, i0, "i0");
  check_state(u, h0, "h0");
  check_state(u, hs0, "hs0");
  const auto [kc, kref] = checked_constants(constants, layer_constants, u);
  const Tensor lengths64 = checked_lengths(lengths, u);

  const int64_t T = u.size(0), B = u.size(1), H = u.size(2);
  const auto acc = u.options().dtype(acc_dtype(u.scalar_type()));
  const Tensor uc = u.contiguous(), bc = bias.contiguous();
  const Tensor i0c = i0.contiguous(), h0c = h0.contiguous(), hs0c = hs0.contiguous();

  Tensor spikes = Backend::empty({T, B, H}, u.options());
  Tensor i_n = at::empty({B, H}, u.options());
  Tensor h_n = at::empty({B, H}, u.options());
  Tensor hs_n = at::empty({B, H}, u.options());
  Tensor checkpoints =
      save_for_backward ? Backend::empty({num_checkpoints(T), 3, B, H}, acc) : at::empty({0}, acc);
  if (T == 0 || B * H == 0) {
    // Nothing to run: the final state is the initial one (copies: outputs never alias inputs).
    i_n.copy_(i0c);
    h_n.copy_(h0c);
    hs_n.copy_(hs0c);
    return {spikes, i_n, h_n, hs_n, checkpoints};
  }

  ForwardParams p{};
  p.T = T;
  p.N = B * H;
  p.H = H;
  p.k = kref;
  p.u = uc.data_ptr();
  p.bias = bc.data_ptr();
  p.i0 = i0c.data_ptr();
  p.h0 = h0c.data_ptr();
  p.hs0 = hs0c.data_ptr();
  p.spikes = spikes.data_ptr();
  p.output_floor = emit_voltage ? -std::numeric_limits<float>::infinity() : 0.0f;
  p.i_n = i_n.data_ptr();
  p.h_n = h_n.data_ptr();
  p.hs_n = hs_n.data_ptr();
  p.checkpoints = save_for_backward ? checkpoints.data_ptr() : nullptr;
  p.lengths = lengths_ptr(lengths64);
  Backend::forward(p, u.scalar_type(), save_for_backward);
  return {spikes, i_n, h_n, hs_n, checkpoints};
}

template <typename Backend>
BackwardResult src_backward_op(const Tensor& grad_spikes, const Tensor& grad_i_n,
                               const Tensor& grad_h_n, const Tensor& grad_hs_n, const Tensor& u,
                               const Tensor& bias, const Tensor& checkpoints,
                               const std::optional<Tensor>& constants, bool detach_recurrent,
                               bool straight_through, bool constants_grad,
                               const std::optional<Tensor>& lengths,
                               c10::ArrayRef<double> layer_constants) {
  const typename Backend::Guard guard(grad_spikes.device());
  const Tensor& g = grad_spikes;
  TORCH_CHECK(g.dim() == 3, "srcext: grad_spikes must be (T, B, H), got ", g.sizes());
  TORCH_CHECK(at::isFloatingType(g.scalar_type()), "srcext: grad_spikes must be floating point");
  check_same(g, bias, "bias");
  check_state(g, grad_i_n, "grad_i_n");
  check_state(g, grad_h_n, "grad_h_n");
  check_state(g, grad_hs_n, "grad_hs_n");
  const int64_t T = g.size(0), B = g.size(1), H = g.size(2);
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == H, "srcext: bias must be (H,)");
  check_same(g, u, "u");
  TORCH_CHECK(u.sizes() == g.sizes(), "srcext: u must be (T, B, H) = ", g.sizes(), ", got ",
              u.sizes());
  const auto acc = acc_dtype(g.scalar_type());
  TORCH_CHECK(checkpoints.scalar_type() == acc, "srcext: checkpoints must have dtype ", acc);
  TORCH_CHECK(checkpoints.device() == g.device(), "srcext: checkpoints must be on ", g.device());
  TORCH_CHECK(checkpoints.dim() == 4 && checkpoints.size(0) == num_checkpoints(T) &&
                  checkpoints.size(1) == 3 && checkpoints.size(2) == B && checkpoints.size(3) == H,
              "srcext: checkpoints must be (", num_checkpoints(T), ", 3, B, H), got ",
              checkpoints.sizes(), " (was the forward run with save_for_backward?)");
  const auto [kc, kref] = checked_constants(constants, layer_constants, g, constants_grad);
  // No gradient for the constants: an empty tensor on g's device (none on the host, which a
  // CUDA graph could not hold); made only where it is returned.
  const Tensor no_grad_constants =
      constants_grad ? Tensor() : at::empty({0}, g.options().dtype(acc));
  const Tensor lengths64 = checked_lengths(lengths, g);

  Tensor grad_u = Backend::empty({T, B, H}, g.options());
  Tensor grad_i0 = at::empty({B, H}, g.options());
  Tensor grad_h0 = at::empty({B, H}, g.options());
  Tensor grad_hs0 = at::empty({B, H}, g.options());
  if (T == 0 || B * H == 0) {
    // The final state is the initial state: gradients pass through unchanged.
    grad_i0.copy_(grad_i_n);
    grad_h0.copy_(grad_h_n);
    grad_hs0.copy_(grad_hs_n);
    return {grad_u,   at::zeros_like(bias),
            grad_i0,  grad_h0,
            grad_hs0, constants_grad ? at::zeros_like(*constants) : no_grad_constants};
  }
  const Tensor bc = bias.contiguous();
  const Tensor gi = grad_i_n.contiguous(), gh = grad_h_n.contiguous(), ghs = grad_hs_n.contiguous();
  const Tensor uc = u.contiguous(), ck = checkpoints.contiguous();
  Tensor grad_bias_partial = at::empty({B, H}, g.options().dtype(acc));
  Tensor grad_constants_partial =
      constants_grad ? at::empty({kNumConstants, B, H}, g.options().dtype(acc)) : Tensor();

  BackwardParams p{};
  p.T = T;
  p.N = B * H;
  p.H = H;
  p.k = kref;
  p.grad_spikes = g.data_ptr();  // any strides: the kernels read it through them
  p.grad_spikes_stride_t = g.stride(0);
  p.grad_spikes_stride_b = g.stride(1);
  p.grad_spikes_stride_h = g.stride(2);
  p.grad_i_n = gi.data_ptr();
  p.grad_h_n = gh.data_ptr();
  p.grad_hs_n = ghs.data_ptr();
  p.u = uc.data_ptr();
  p.bias = bc.data_ptr();
  p.checkpoints = ck.data_ptr();
  p.grad_u = grad_u.data_ptr();
  p.grad_bias_partial = grad_bias_partial.data_ptr();
  p.grad_constants_partial = constants_grad ? grad_constants_partial.data_ptr() : nullptr;
  p.grad_i0 = grad_i0.data_ptr();
  p.grad_h0 = grad_h0.data_ptr();
  p.grad_hs0 = grad_hs0.data_ptr();
  p.lengths = lengths_ptr(lengths64);
  Backend::backward(p, g.scalar_type(), detach_recurrent, straight_through);
  // Sum the per-neuron partials over the batch in a fixed order: deterministic, no atomics.
  Tensor grad_bias = grad_bias_partial.sum(0).to(bias.scalar_type());
  // The constants' likewise, over the batch (and the neurons too for per-layer constants).
  Tensor grad_constants =
      !constants_grad ? no_grad_constants
                      : (constants->dim() == 2 ? grad_constants_partial.sum(1)
                                               : grad_constants_partial.sum(at::IntArrayRef{1, 2}))
                            .to(constants->device());
  return {grad_u, grad_bias, grad_i0, grad_h0, grad_hs0, grad_constants};
}

}  // namespace srcext
