// CPU kernels for bfloat16 storage (float math); one translation unit per dtype so that builds parallelise.
#include "src_cpu_kernels.h"

SRCEXT_CPU_INSTANTIATE(bf16, c10::BFloat16, float)
