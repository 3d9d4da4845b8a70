// src_events_library.cpp — the schemas of the event-driven projection ops (src_events.h),
// added to the srcext library defined in src_library.cpp.
#include <torch/library.h>

#include "src_events.h"

TORCH_LIBRARY_FRAGMENT(srcext, m) {
  m.def(srcext::kEventsSchema);
  m.def(srcext::kEventMatmulSchema);
  m.def(srcext::kEventWeightGradSchema);
  m.def(srcext::kProjectionSchema);
  m.def(srcext::kProjectionWeightGradSchema);
}
