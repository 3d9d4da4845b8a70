// src_recurrence_schemas.h — the schemas of the srcext ops, written once.
// csrc/common/src_library.cpp defines them in the `srcext` namespace; the CUDA host emulation
// (tests/emulation) defines the same ops in a namespace of its own so that the tests can run both
// side by side.
#pragma once

namespace srcext {

// The SRC time loop for one layer. u is the drive W_s s_in of every step, (T, B, H);
// bias is the effective bias min(b, bias_max), (H,); (i0, h0, hs0) the initial state;
// constants the cell constants, (K,) per layer or (K, H) per neuron, rows in the order of
// csrc/common/src_constants.h, in float32 (float64 for float64 inputs), on the CPU or u's device;
// or None, with layer_constants the K per-layer values as floats (in that order): then there
// is no tensor for a compiled graph to keep on the host, which CUDA graphs cannot hold.
// detach_recurrent and straight_through only matter to the autograd formula.
// emit_voltage: the first output is the voltage h of every step instead of its spike relu(h)
// (the autograd formula then differentiates it as straight_through does: d out / d h = 1).
// Returns spikes (T, B, H), the final state (i_n, h_n, hs_n), and what the backward needs
// besides u: the state (i, h, hs) before every 16th step, checkpoints (ceil(T / 16), 3, B, H)
// in float32 (float64 for float64 inputs), empty unless save_for_backward.
// lengths, optional, int32 or int64 (B,) with values in [0, T]: sample b runs only its
// first lengths[b] steps; after them its spikes are 0 and its state is frozen (the final
// state is the state after its last step). See csrc/src_params.h.
constexpr const char* kForwardSchema =
    "src_forward(Tensor u, Tensor bias, Tensor i0, Tensor h0, Tensor hs0, Tensor? constants, "
    "bool detach_recurrent, bool straight_through, bool save_for_backward, "
    "Tensor? lengths=None, float[] layer_constants=[], bool emit_voltage=False) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor)";

// Backward of src_forward from its drive u and checkpoints. Returns the gradients of
// u, bias, i0, h0, hs0 (grad_u is 0 past each sample's length, and the final state's
// gradients enter at its last step), and of the constants (their shape and device) when
// constants_grad, else an empty tensor (on grad_spikes' device); lengths and the constants
// (the tensor, or layer_constants) as given to src_forward.
constexpr const char* kBackwardSchema =
    "src_backward(Tensor grad_spikes, Tensor grad_i_n, Tensor grad_h_n, Tensor grad_hs_n, "
    "Tensor u, Tensor bias, Tensor checkpoints, Tensor? constants, bool detach_recurrent, "
    "bool straight_through, bool constants_grad, Tensor? lengths=None, "
    "float[] layer_constants=[]) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)";

// One layer, eagerly: the projection u = x W^T (x (T, B, F), or (B, F) for one step, when the
// spikes are (B, H) too; weight (H, F)), the effective
// bias min(b, bias_max) (with the straight-through gradient when bias_straight_through and b
// requires one: srcext/bias.py), and src_forward, which keeps its checkpoints when a gradient
// will be asked for. Returns spikes and the final state. A composite of the ops below it (its
// derivative is theirs): one call from Python where the layer would make four, which is most
// of the cost of a streaming step. torch.compile and export see the ops it is made of.
constexpr const char* kLayerSchema =
    "src_layer(Tensor x, Tensor weight, Tensor b, Tensor i0, Tensor h0, Tensor hs0, "
    "Tensor? constants, float bias_max, bool bias_straight_through, bool detach_recurrent, "
    "bool straight_through, Tensor? lengths=None, float[] layer_constants=[], "
    "bool emit_voltage=False) -> (Tensor, Tensor, Tensor, Tensor)";

// min(b, bias_max), whose gradient above bias_max passes where it lowers b (srcext/bias.py).
constexpr const char* kBiasStraightThroughSchema =
    "src_bias_straight_through(Tensor b, float bias_max) -> Tensor";

}  // namespace srcext
