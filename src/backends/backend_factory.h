// The backend factory: the one place above core/ that knows every backend (src/cpu/, cuda/), so
// that nothing in src/core/ includes one (tests/layering.py checks it).
#pragma once

#include "core/backend.h"

#include <memory>
#include <string>

namespace am {

// kind: "cpu", "cuda" or "auto" (CUDA when it is built and a device is present, else CPU).
// threads <= 0: all cores. Runs create theirs through make_checked_backend (train/backend_check.h),
// which checks a GPU backend against the CPU reference first.
std::unique_ptr<Backend> make_backend(const std::string& kind, Precision precision, int threads);

}  // namespace am
