// CPU kernels for half storage (float math); one translation unit per dtype so that builds
// parallelise.
#include "src_recurrence_cpu_kernels.h"

SRCEXT_CPU_INSTANTIATE(c10::Half)
