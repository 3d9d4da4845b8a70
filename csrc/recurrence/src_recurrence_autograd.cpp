// src_recurrence_autograd.cpp — srcext's autograd in C++, so that a call runs no Python below the
// layer: the derivative of the recurrence ops (src_recurrence_autograd.h), the straight-through
// bias op with its derivative, and the eager layer op src_layer (src_recurrence_schemas.h:
// kLayerSchema), a composite of the GEMM, the effective bias and src_forward. (One translation
// unit: each that includes the autograd headers costs ~35 s of compile.) Every op called from
// Python costs microseconds of binding and dispatch, as much as a streaming step's whole kernel.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "src_recurrence_autograd.h"

namespace srcext {
namespace {

const c10::TypedOperatorHandle<Tensor(const Tensor&, double)>& bias_straight_through_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("srcext::src_bias_straight_through", "")
                             .typed<Tensor(const Tensor&, double)>();
  return op;
}

Tensor bias_straight_through_value(const Tensor& b, double bias_max) {
  return at::clamp_max(b, bias_max);
}

// The gradient of min(b, bias_max): where b <= bias_max, and above it where it is positive
// (descent then lowers b back into the range where it acts). As srcext/bias.py's.
struct BiasStraightThrough : torch::autograd::Function<BiasStraightThrough> {
  static Tensor forward(AutogradContext* ctx, const Tensor& b, double bias_max) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({b});
    ctx->saved_data["bias_max"] = bias_max;
    return bias_straight_through_op().call(b, bias_max);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Tensor b = ctx->get_saved_variables()[0];
    const Tensor& grad = grads[0];
    const Tensor passes = at::le(b, ctx->saved_data["bias_max"].toDouble()).logical_or_(grad > 0);
    return {at::where(passes, grad, at::zeros_like(grad)), Tensor()};
  }
};

Tensor bias_straight_through_autograd(const Tensor& b, double bias_max) {
  if (!at::GradMode::is_enabled() || !b.requires_grad()) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return bias_straight_through_op().call(b, bias_max);
  }
  return BiasStraightThrough::apply(b, bias_max);
}

std::tuple<Tensor, Tensor, Tensor, Tensor> src_layer(
    const Tensor& x, const Tensor& weight, const Tensor& b, const Tensor& i0, const Tensor& h0,
    const Tensor& hs0, const std::optional<Tensor>& constants, double bias_max,
    bool bias_straight_through, bool detach_recurrent, bool straight_through,
    const std::optional<Tensor>& lengths, c10::ArrayRef<double> layer_constants,
    bool emit_voltage) {
  const bool grad_mode = at::GradMode::is_enabled();
  // Without grad mode there is no graph to record: the ops below run their kernels directly,
  // skipping the autograd layer of each (three dispatcher hops of a streaming step).
  std::optional<at::AutoDispatchBelowADInplaceOrView> below_autograd;
  if (!grad_mode) below_autograd.emplace();
  TORCH_CHECK(x.dim() == 3 || x.dim() == 2,
              "srcext: src_layer's x must be (T, B, F) or (B, F), got ", x.sizes());
  const bool one_step = x.dim() == 2;
  // The GEMM on (T*B, F): a 3-D linear takes matmul's longer way to the same mm.
  const int64_t steps = one_step ? 1 : x.size(0), batch = x.size(-2);
  const Tensor u =
      at::linear(x.reshape({-1, x.size(-1)}), weight).view({steps, batch, weight.size(0)});
  const Tensor bias = bias_straight_through && grad_mode && b.requires_grad()
                          ? bias_straight_through_op().call(b, bias_max)
                          : at::clamp_max(b, bias_max);
  const bool save = records_graph(u, bias, i0, h0, hs0, constants);
  auto [spikes, i_n, h_n, hs_n, checkpoints] = OpHandles<SrcextOps>::forward().call(
      u, bias, i0, h0, hs0, constants, detach_recurrent, straight_through, save, lengths,
      layer_constants, emit_voltage);
  return {one_step ? spikes.squeeze(0) : spikes, i_n, h_n, hs_n};
}

}  // namespace
}  // namespace srcext

TORCH_LIBRARY_IMPL(srcext, CompositeImplicitAutograd, m) {
  m.impl("src_layer", &srcext::src_layer);
}

TORCH_LIBRARY_IMPL(srcext, CompositeExplicitAutograd, m) {
  m.impl("src_bias_straight_through", &srcext::bias_straight_through_value);
}

TORCH_LIBRARY_IMPL(srcext, Autograd, m) {
  srcext::register_autograd<srcext::SrcextOps>(m);
  m.impl("src_bias_straight_through", &srcext::bias_straight_through_autograd);
}
