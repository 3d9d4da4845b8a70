// Kernels for double storage (double math); one translation unit per dtype so that builds
// parallelise.
#include "src_recurrence_kernels.cuh"

SRCEXT_CUDA_INSTANTIATE(double)
