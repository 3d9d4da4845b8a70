// src_autograd.cpp — srcext's ops get their derivative (src_autograd.h) as Autograd kernels.
#include "src_autograd.h"

TORCH_LIBRARY_IMPL(srcext, Autograd, m) { srcext::register_autograd<srcext::SrcextOps>(m); }
