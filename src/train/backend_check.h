// The start-up check of a non-reference backend: before a run trains on the GPU, two small MoE
// models (a router with top-k and SwiGLU experts; AoE with factorized experts and L2 activation
// norms) take two optimizer steps on it and on the CPU reference, in the same precision, and the
// cross-entropy losses and gradient norms must agree. It takes milliseconds, and it turns a broken kernel, driver
// or build into a clear refusal (run.backend: cuda) or a fallback to the CPU (run.backend: auto)
// instead of a silently wrong run. The parity tests (tests/cuda/) remain the real verification.
#pragma once

#include "config/config.h"
#include "core/backend.h"

#include <memory>
#include <string>

namespace am {

struct BackendCheck {
  bool ok = true;
  double worst = 0;    // the largest relative difference seen
  std::string detail;  // what differed first (or "agrees ...")
};

// Compares `be` with the CPU reference in precision `p`. Tolerance (relative, on every compared
// value): 1e-3 in fp32 (other summation orders), 3e-2 in bf16 (an activation may round to the
// other neighbouring bf16 value); `rtol` > 0 overrides it.
BackendCheck check_against_cpu(Backend& be, Precision p, double rtol = 0);

// make_backend for a run, then the check above when the backend is not the CPU: a failure throws
// a UserError under run.backend: cuda or under mpirun (ranks must agree on their backend), and
// falls back to the CPU with a warning for a single-process run.backend: auto.
std::unique_ptr<Backend> make_checked_backend(const RunConfig& run);

}  // namespace am
