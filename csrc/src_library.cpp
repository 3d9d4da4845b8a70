// src_library.cpp — the srcext op schemas (the backends register kernels for them) and the
// Python module srcext._C, which exists only so that importing it loads this library.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing srcext._C runs the static registrations below; the module itself is empty.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(srcext, m) {
  // The SRC time loop for one layer. u is the drive W_s s_in of every step, (T, B, H);
  // bias is the effective bias min(b, bias_max), (H,); (i0, h0, hs0) the initial state.
  // detach_recurrent and straight_through only matter to the autograd formula.
  // Returns spikes (T, B, H), the final state (i_n, h_n, hs_n), and what the backward needs
  // besides u: the state (i, h, hs) before every 16th step, checkpoints (ceil(T / 16), 3, B, H)
  // in float32 (float64 for float64 inputs), empty unless save_for_backward.
  // lengths, optional, int32 or int64 (B,) with values in [0, T]: sample b runs only its
  // first lengths[b] steps; after them its spikes are 0 and its state is frozen (the final
  // state is the state after its last step). See csrc/src_params.h.
  m.def(
      "src_forward(Tensor u, Tensor bias, Tensor i0, Tensor h0, Tensor hs0, float alpha, "
      "float rho, float r, float r_s, float z, float z_hyp, float z_dep, float gate_slope, "
      "float gate_threshold, bool detach_recurrent, bool straight_through, "
      "bool save_for_backward, Tensor? lengths=None) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // Backward of src_forward from its drive u and checkpoints. Returns the gradients of
  // u, bias, i0, h0, hs0 (grad_u is 0 past each sample's length, and the final state's
  // gradients enter at its last step); lengths as given to src_forward.
  m.def(
      "src_backward(Tensor grad_spikes, Tensor grad_i_n, Tensor grad_h_n, Tensor grad_hs_n, "
      "Tensor u, Tensor bias, Tensor checkpoints, float alpha, float rho, float r, "
      "float r_s, float z, float z_hyp, float z_dep, float gate_slope, float gate_threshold, "
      "bool detach_recurrent, bool straight_through, Tensor? lengths=None) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}
