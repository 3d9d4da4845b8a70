// The event-driven projection's kernels for every storage dtype (float math; double for
// float64). One translation unit: the kernels are small.
#include "src_events_kernels.cuh"

SRCEXT_EVENTS_INSTANTIATE(float)
SRCEXT_EVENTS_INSTANTIATE(double)
SRCEXT_EVENTS_INSTANTIATE(c10::BFloat16)
SRCEXT_EVENTS_INSTANTIATE(c10::Half)
