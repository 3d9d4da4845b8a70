// Kernels for c10::Half storage (float math); one translation unit per dtype so that builds
// parallelise.
#include "src_recurrence_kernels.cuh"

SRCEXT_CUDA_INSTANTIATE(c10::Half)
