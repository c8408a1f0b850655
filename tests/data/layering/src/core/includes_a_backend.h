// A file of core/ that includes a backend: tests/layering.py must refuse it (the
// layering_catches test), and pass the core/ include before it.
#pragma once

#include "core/tensor.h"
#include "cpu/cpu_backend.h"
