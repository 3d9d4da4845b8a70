// CPU kernels for half storage (float math); one translation unit per dtype so that builds parallelise.
#include "src_cpu_kernels.h"

SRCEXT_CPU_INSTANTIATE(f16, c10::Half, float)
