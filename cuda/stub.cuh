// not_yet(op): the error an op without a CUDA kernel throws.
#pragma once

#include "core/error.h"

namespace am::cuda {

[[noreturn]] inline void not_yet(const char* op) {
  throw UserError(fmt::format("the CUDA backend has no kernel for '{}' yet", op),
                  "use run.backend: cpu (or auto, which picks the CPU until the CUDA backend is complete)");
}

}  // namespace am::cuda
