// CPU kernels for double storage (double math); one translation unit per dtype so that builds
// parallelise. float64 is for gradcheck and accuracy checks, not for speed: its kernels are
// compiled once, for the baseline instruction set, not once per x86-64 level (a third of the build
// time).
#define SRCEXT_NO_CPU_CLONES 1
#include "src_recurrence_cpu_kernels.h"

SRCEXT_CPU_INSTANTIATE(double)
