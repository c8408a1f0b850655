// A file of core/ that includes a backend: tests/layering.cmake must refuse it (the
// core_layering_catches test).
#pragma once

#include "core/tensor.h"
#include "cpu/cpu_backend.h"
