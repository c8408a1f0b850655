// The check every CPU op that reads per-token slots (slot_expert, (N, kmax)) makes first: each
// slot holds an expert id in [0, n) or -1 (empty). An id outside is a caller's bug (the CUDA
// kernels skip such slots or write NaN; the CPU, the spec, stops here).
#pragma once

#include "core/error.h"

#include <cstdint>

namespace am::cpu {

inline void check_slot_ids(const int32_t* slot_expert, int64_t slots, int64_t n) {
  for (int64_t i = 0; i < slots; ++i) {
    AM_CHECK(slot_expert[i] >= -1 && slot_expert[i] < n, "slot {} holds expert {}, outside [-1, {})", i, slot_expert[i],
             n);
  }
}

}  // namespace am::cpu
