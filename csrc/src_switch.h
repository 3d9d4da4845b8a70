// src_switch.h — runtime flags to compile-time template arguments (as mamba's BOOL_SWITCH).
//
//   SRC_BOOL_SWITCH(save, kSave, forward_block<scalar_t, Acc, kSave>(p, k, n0, n));
//
// expands to an if/else whose branches each declare `constexpr bool kSave` (true / false)
// and then run the statement, so nested switches give every combination (the CPU block
// loops, the CUDA launchers). It is a plain statement, not a lambda: the code stays in the
// calling function, which matters for the CPU kernels' multi-versioned (target_clones)
// entry points, whose callees must all inline.
#pragma once

#define SRC_BOOL_SWITCH(COND, NAME, ...) \
  do {                                   \
    if (COND) {                          \
      constexpr bool NAME = true;        \
      __VA_ARGS__;                       \
    } else {                             \
      constexpr bool NAME = false;       \
      __VA_ARGS__;                       \
    }                                    \
  } while (0)
