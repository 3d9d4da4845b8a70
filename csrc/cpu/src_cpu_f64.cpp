// CPU kernels for double storage (double math); one translation unit per dtype so that builds parallelise.
#include "src_cpu_kernels.h"

SRCEXT_CPU_INSTANTIATE(f64, double, double)
