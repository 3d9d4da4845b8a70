// Kernels for float storage (float math); one translation unit per dtype so that builds parallelise.
#include "src_kernels.cuh"

SRCEXT_CUDA_INSTANTIATE(f32, float, float)
