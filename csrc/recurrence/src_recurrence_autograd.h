// src_recurrence_autograd.h — the derivative of src_forward, registered as the op's Autograd kernel
// in C++ so that no Python runs on a call's path (a streaming step, a T=1 layer: there the host
// cost is the whole cost). The backward is src_backward, itself an op, with no derivative of its
// own. srcext registers these for its ops (src_recurrence_autograd.cpp); the tests' host emulation
// of the CUDA kernels does the same for its namespace.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <string>
#include <tuple>

namespace srcext {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using ForwardSignature = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
    const std::optional<Tensor>&, bool, bool, bool, const std::optional<Tensor>&,
    c10::ArrayRef<double>, bool);
using BackwardSignature = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
    const Tensor&, const std::optional<Tensor>&, bool, bool, bool, const std::optional<Tensor>&,
    c10::ArrayRef<double>);

// The two ops of a namespace ("srcext", or the emulation's), looked up once.
template <typename Namespace>
struct OpHandles {
  static const c10::TypedOperatorHandle<ForwardSignature>& forward() {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow(Namespace::kForward, "")
                               .template typed<ForwardSignature>();
    return op;
  }
  static const c10::TypedOperatorHandle<BackwardSignature>& backward() {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow(Namespace::kBackward, "")
                               .template typed<BackwardSignature>();
    return op;
  }
};

// srcext's own ops (the tests' emulation names its namespace likewise).
struct SrcextOps {
  static constexpr const char* kForward = "srcext::src_forward";
  static constexpr const char* kBackward = "srcext::src_backward";
};

// The forward's tensor arguments, in order, as autograd numbers its input edges (the optional
// constants has an edge only when given; it is the 6th tensor then).
constexpr size_t kConstantsEdge = 5;
constexpr size_t kForwardArguments = 12;  // every argument of the schema, tensors or not

template <typename Namespace>
struct ForwardFunction : torch::autograd::Function<ForwardFunction<Namespace>> {
  static variable_list forward(AutogradContext* ctx, const Tensor& u, const Tensor& bias,
                               const Tensor& i0, const Tensor& h0, const Tensor& hs0,
                               const std::optional<Tensor>& constants, bool detach_recurrent,
                               bool straight_through, bool save_for_backward,
                               const std::optional<Tensor>& lengths,
                               c10::ArrayRef<double> layer_constants, bool emit_voltage) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [spikes, i_n, h_n, hs_n, checkpoints] = OpHandles<Namespace>::forward().call(
        u, bias, i0, h0, hs0, constants, detach_recurrent, straight_through, save_for_backward,
        lengths, layer_constants, emit_voltage);
    ctx->saved_data["detach_recurrent"] = detach_recurrent;
    // The voltage output is h itself: d out / d h = 1, the straight-through backward.
    ctx->saved_data["straight_through"] = straight_through || emit_voltage;
    ctx->saved_data["saved"] = save_for_backward;
    if (!layer_constants.empty()) ctx->saved_data["layer_constants"] = layer_constants.vec();
    // u is kept anyway (it is the GEMM's output); the backward recomputes from it.
    ctx->save_for_backward(
        {u, bias, checkpoints, constants.value_or(Tensor()), lengths.value_or(Tensor())});
    ctx->mark_non_differentiable({checkpoints});
    ctx->set_materialize_grads(false);  // no zero-filled (T, B, H) gradient for unused outputs
    return {spikes, i_n, h_n, hs_n, checkpoints};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const Tensor &u = saved[0], &bias = saved[1], &checkpoints = saved[2];
    const Tensor &constants = saved[3], &lengths = saved[4];
    TORCH_CHECK(ctx->saved_data["saved"].toBool() || u.size(0) == 0,
                "srcext: src_forward ran with save_for_backward=False, so it kept nothing to "
                "differentiate; call it with save_for_backward=True when gradients are needed");
    const bool constants_grad = constants.defined() && ctx->needs_input_grad(kConstantsEdge);
    const int64_t T = u.size(0), B = u.size(1), H = u.size(2);
    // An output nobody used has no gradient: zero here, in C++ (small but for grad_spikes).
    auto given = [&](const Tensor& g, c10::IntArrayRef shape) {
      return g.defined() ? g : at::zeros(shape, u.options());
    };
    std::vector<double> layer_constants;
    if (ctx->saved_data.count("layer_constants")) {
      layer_constants = ctx->saved_data["layer_constants"].toDoubleVector();
    }
    auto [grad_u, grad_bias, grad_i0, grad_h0, grad_hs0, grad_constants] =
        OpHandles<Namespace>::backward().call(
            given(grads[0], {T, B, H}), given(grads[1], {B, H}), given(grads[2], {B, H}),
            given(grads[3], {B, H}), u, bias, checkpoints,
            constants.defined() ? std::optional<Tensor>(constants) : std::nullopt,
            ctx->saved_data["detach_recurrent"].toBool(),
            ctx->saved_data["straight_through"].toBool(), constants_grad,
            lengths.defined() ? std::optional<Tensor>(lengths) : std::nullopt, layer_constants);
    variable_list result(kForwardArguments);  // none for the flags, lengths and floats
    result[0] = grad_u;
    result[1] = grad_bias;
    result[2] = grad_i0;
    result[3] = grad_h0;
    result[4] = grad_hs0;
    if (constants_grad) result[5] = grad_constants;
    return result;
  }
};

// src_backward has no derivative: its outputs get a node that says so if a second backward
// reaches it (create_graph=True and then a gradient of the gradient).
template <typename Namespace>
struct BackwardFunction : torch::autograd::Function<BackwardFunction<Namespace>> {
  static variable_list forward(AutogradContext*, const Tensor& grad_spikes, const Tensor& grad_i_n,
                               const Tensor& grad_h_n, const Tensor& grad_hs_n, const Tensor& u,
                               const Tensor& bias, const Tensor& checkpoints,
                               const std::optional<Tensor>& constants, bool detach_recurrent,
                               bool straight_through, bool constants_grad,
                               const std::optional<Tensor>& lengths,
                               c10::ArrayRef<double> layer_constants) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [a, b, c, d, e, f] = OpHandles<Namespace>::backward().call(
        grad_spikes, grad_i_n, grad_h_n, grad_hs_n, u, bias, checkpoints, constants,
        detach_recurrent, straight_through, constants_grad, lengths, layer_constants);
    return {a, b, c, d, e, f};
  }
  static variable_list backward(AutogradContext*, variable_list) {
    TORCH_CHECK(false,
                "srcext: double backward (a gradient of the SRC gradient) is not supported; "
                "use backend='reference' for higher-order derivatives");
    return {};
  }
};

// Whether src_forward with these inputs records a graph: grad mode, and an input that asks
// for a gradient. (The forward keeps its checkpoints exactly then.)
inline bool records_graph(const Tensor& u, const Tensor& bias, const Tensor& i0, const Tensor& h0,
                          const Tensor& hs0, const std::optional<Tensor>& constants) {
  return at::GradMode::is_enabled() &&
         (u.requires_grad() || bias.requires_grad() || i0.requires_grad() || h0.requires_grad() ||
          hs0.requires_grad() ||
          (constants.has_value() && constants->defined() && constants->requires_grad()));
}

template <typename Namespace>
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> src_forward_autograd(
    const Tensor& u, const Tensor& bias, const Tensor& i0, const Tensor& h0, const Tensor& hs0,
    const std::optional<Tensor>& constants, bool detach_recurrent, bool straight_through,
    bool save_for_backward, const std::optional<Tensor>& lengths,
    c10::ArrayRef<double> layer_constants, bool emit_voltage) {
  if (!records_graph(u, bias, i0, h0, hs0,
                     constants)) {  // no graph to build (inference): no node, no context
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return OpHandles<Namespace>::forward().call(u, bias, i0, h0, hs0, constants, detach_recurrent,
                                                straight_through, save_for_backward, lengths,
                                                layer_constants, emit_voltage);
  }
  auto out = ForwardFunction<Namespace>::apply(u, bias, i0, h0, hs0, constants, detach_recurrent,
                                               straight_through, save_for_backward, lengths,
                                               layer_constants, emit_voltage);
  return {out[0], out[1], out[2], out[3], out[4]};
}

template <typename Namespace>
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> src_backward_autograd(
    const Tensor& grad_spikes, const Tensor& grad_i_n, const Tensor& grad_h_n,
    const Tensor& grad_hs_n, const Tensor& u, const Tensor& bias, const Tensor& checkpoints,
    const std::optional<Tensor>& constants, bool detach_recurrent, bool straight_through,
    bool constants_grad, const std::optional<Tensor>& lengths,
    c10::ArrayRef<double> layer_constants) {
  auto out = BackwardFunction<Namespace>::apply(
      grad_spikes, grad_i_n, grad_h_n, grad_hs_n, u, bias, checkpoints, constants, detach_recurrent,
      straight_through, constants_grad, lengths, layer_constants);
  return {out[0], out[1], out[2], out[3], out[4], out[5]};
}

// In a TORCH_LIBRARY_IMPL(<namespace>, Autograd, m) block.
template <typename Namespace>
void register_autograd(torch::Library& m) {
  m.impl("src_forward", &src_forward_autograd<Namespace>);
  m.impl("src_backward", &src_backward_autograd<Namespace>);
}

}  // namespace srcext
