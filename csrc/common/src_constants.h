// src_constants.h — the cell constants as the ops receive them: one tensor, per layer (K,) or
// per neuron (K, H), in the precision of the math, its rows in the order listed here. The same
// order is srcext/constants.py's CELL_CONSTANTS (tests/test_dynamics.py checks the two agree).
#pragma once

// X(name, Index) for each constant, in row order. Everything in C++ that lists the constants
// (the indices and the names here) is made from this list.
#define SRC_CELL_CONSTANTS(X)                                            \
  X(alpha, kAlpha)                   /* decay of the input integrator */ \
  X(rho, kRho)                       /* bound of the input */            \
  X(r, kR)                           /* fast positive feedback */        \
  X(r_s, kRS)                        /* slow negative feedback */        \
  X(z, kZ)                           /* update gate of h */              \
  X(z_hyp, kZHyp)                    /* slow gate when h is low */       \
  X(z_dep, kZDep)                    /* slow gate when h is high */      \
  X(gate_slope, kGateSlope)          /* steepness of the slow gate */    \
  X(gate_threshold, kGateThreshold)  /* where the slow gate switches */

namespace srcext {

enum ConstantIndex : int {
#define SRC_CONSTANT_INDEX(name, index) index,
  SRC_CELL_CONSTANTS(SRC_CONSTANT_INDEX)
#undef SRC_CONSTANT_INDEX
      kNumConstants
};

constexpr const char* kConstantNames[kNumConstants] = {
#define SRC_CONSTANT_NAME(name, index) #name,
    SRC_CELL_CONSTANTS(SRC_CONSTANT_NAME)
#undef SRC_CONSTANT_NAME
};

}  // namespace srcext
