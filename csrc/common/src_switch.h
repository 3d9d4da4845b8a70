// src_switch.h — runtime values to compile-time template arguments, one mechanism for every
// backend and op family (as mamba's BOOL_SWITCH):
//
//   SRC_DTYPE_SWITCH(dtype, scalar_t, fn = &forward_entry<scalar_t, kLengths>);
//   SRC_BOOL_SWITCH(save, kSave, forward_block<scalar_t, Acc, kSave>(p, k, n0, n));
//
// Each expands to a switch or an if/else whose branches declare the type `scalar_t` (the
// storage type of an at::ScalarType) or `constexpr bool kSave` (true / false) and then run
// the statement, so nested switches give every combination. They are plain statements, not
// lambdas: the code stays in the calling function, which matters for the CPU kernels'
// multi-versioned entry points (src_cpu_clones.h), whose callees must all inline.
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include <type_traits>

namespace srcext {

// The precision of the math for a storage type: double for double, float for the rest
// (half-precision storage, float math).
template <typename scalar_t>
using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

}  // namespace srcext

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

// The storage types of the ops' inputs.
#define SRC_DTYPE_SWITCH(DTYPE, NAME, ...)                                     \
  do {                                                                         \
    switch (DTYPE) {                                                           \
      case at::kFloat: {                                                       \
        using NAME = float;                                                    \
        __VA_ARGS__;                                                           \
      } break;                                                                 \
      case at::kDouble: {                                                      \
        using NAME = double;                                                   \
        __VA_ARGS__;                                                           \
      } break;                                                                 \
      case at::kBFloat16: {                                                    \
        using NAME = c10::BFloat16;                                            \
        __VA_ARGS__;                                                           \
      } break;                                                                 \
      case at::kHalf: {                                                        \
        using NAME = c10::Half;                                                \
        __VA_ARGS__;                                                           \
      } break;                                                                 \
      default: TORCH_CHECK_TYPE(false, "srcext: unsupported dtype ", (DTYPE)); \
    }                                                                          \
  } while (0)
