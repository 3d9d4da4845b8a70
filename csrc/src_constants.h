// src_constants.h — the cell constants as the ops receive them: one tensor, per layer (K,) or
// per neuron (K, H), in the precision of the math, its rows in this order. The same order is
// srcext/constants.py's CELL_CONSTANTS (tests/test_dynamics.py checks the two agree).
#pragma once

namespace srcext {

enum ConstantIndex : int {
  kAlpha = 0,       // decay of the input integrator
  kRho,             // bound of the input
  kR,               // fast positive feedback
  kRS,              // slow negative feedback
  kZ,               // update gate of h
  kZHyp,            // slow gate when h is low
  kZDep,            // slow gate when h is high
  kGateSlope,       // steepness of the slow gate
  kGateThreshold,   // where the slow gate switches
  kNumConstants
};

constexpr const char* kConstantNames[kNumConstants] = {
    "alpha", "rho", "r", "r_s", "z", "z_hyp", "z_dep", "gate_slope", "gate_threshold"};

}  // namespace srcext
