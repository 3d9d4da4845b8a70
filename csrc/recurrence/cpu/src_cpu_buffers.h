// src_cpu_buffers.h — large output buffers of the CPU ops, kept for reuse across calls.
//
// glibc serves every allocation above its mmap threshold with a fresh mapping, so each call's
// (T, B, H) outputs (spikes, checkpoints, grad_u) had their pages faulted in, zeroed by the
// kernel, again on every call: at T=500, B=64, H=512 that was a quarter of a training loop's
// CPU time. A training or inference loop asks for the same sizes call after call, so buffers
// freed by autograd are kept here and handed out again: no page faults in steady state. A
// request takes the smallest kept buffer of 1 to 2 times its size, so variable-length
// training (a different T each call) reuses them too. Small buffers go to the default
// allocator (its heap reuses them already).
//
// The cache holds at most as many bytes of free buffers as were ever in use at once (the
// working set of a step), and at most SRCEXT_CPU_BUFFER_CACHE_MB (default 2048, 0 turns
// the cache off), dropping the oldest first; torch.ops.srcext.release_cpu_buffers() frees
// them all. Thread-safe.
#pragma once

#include <ATen/ATen.h>

namespace srcext {
namespace cpu {

// at::empty(sizes, options) on the CPU, from the cache when large.
at::Tensor empty_cached(at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace cpu
}  // namespace srcext
