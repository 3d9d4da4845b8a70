// src_library.cpp — the srcext op schemas, recurrence and events (one translation unit: each
// costs ~12 s of compile for the torch headers; the backends register kernels for them), and the
// Python module srcext._C, which exists only so that importing it loads this library.
#include <Python.h>
#include <torch/library.h>

#include "../events/src_events_schemas.h"
#include "../recurrence/src_recurrence_schemas.h"

extern "C" {
// Importing srcext._C runs the static registrations below; the module itself is empty.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(srcext, m) {
  m.def(srcext::kForwardSchema);
  m.def(srcext::kBackwardSchema);
  m.def(srcext::kLayerSchema);
  m.def(srcext::kBiasStraightThroughSchema);
  // the event-driven projection (src_events_schemas.h)
  m.def(srcext::kEventsSchema);
  m.def(srcext::kEventMatmulSchema);
  m.def(srcext::kEventWeightGradSchema);
  m.def(srcext::kProjectionSchema);
  m.def(srcext::kProjectionWeightGradSchema);
}
