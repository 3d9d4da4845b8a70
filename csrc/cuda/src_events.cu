// The event-driven projection's kernels for every storage dtype (float math; double for
// float64). One translation unit: the kernels are small.
#include "src_events.cuh"

SRCEXT_EVENTS_INSTANTIATE(f32, float, float)
SRCEXT_EVENTS_INSTANTIATE(f64, double, double)
SRCEXT_EVENTS_INSTANTIATE(bf16, c10::BFloat16, float)
SRCEXT_EVENTS_INSTANTIATE(f16, c10::Half, float)
