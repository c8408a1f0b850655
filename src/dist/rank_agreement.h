// Ranks that disagree (docs/distributed.md, "Ranks must agree"): every rank of a job must run the
// same config on the same data with the same layout, or the job hangs (ranks that stop at
// different steps) or writes wrong weights (ranks with other tensor shapes). At start-up each rank
// lists the facts that must agree, and require_ranks_agree() compares them with rank 0's.
#pragma once

#include "dist/comm.h"

#include <string>
#include <vector>

namespace am {

// One fact of a run: what it is ("train.max_steps", "data.train file 1") and its value as text.
struct RunFact {
  std::string key;
  std::string value;
};

// Collective over `world`. Cheap when the ranks agree: one hash broadcast from rank 0 and one sum.
// Otherwise every rank throws the same UserError naming the lowest rank that differs, the first
// fact (in list order) where it differs, and both values.
void require_ranks_agree(Comm& world, const std::vector<RunFact>& facts);

// The hash require_ranks_agree() compares: XXH3-64 of the facts (keys and values, length-prefixed).
uint64_t facts_hash(const std::vector<RunFact>& facts);

}  // namespace am
