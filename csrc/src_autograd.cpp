// src_autograd.cpp — srcext's ops get their derivative (src_autograd.h) as Autograd kernels.
#include "src_autograd.h"

namespace {
struct SrcextOps {
  static constexpr const char* kForward = "srcext::src_forward";
  static constexpr const char* kBackward = "srcext::src_backward";
};
}  // namespace

TORCH_LIBRARY_IMPL(srcext, Autograd, m) { srcext::register_autograd<SrcextOps>(m); }
