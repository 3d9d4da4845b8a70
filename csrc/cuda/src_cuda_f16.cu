// Kernels for c10::Half storage (float math); one translation unit per dtype so that builds parallelise.
#include "src_kernels.cuh"

SRCEXT_CUDA_INSTANTIATE(f16, c10::Half, float)
