// The results table of a sweep: one row per point in sweep order with its varying keys' values,
// final train / val loss, tokens/s, experts per token, Ent_load, total and active parameters and
// status. results.csv has exact numbers (empty where unknown) and full key paths; results.md is
// the same table, rounded, for reading (and printed at the end of `autonomoe sweep`).
#pragma once

#include "sweep/runner.h"

#include <string>
#include <vector>

namespace am {

std::string results_csv(const SweepPlan& plan, const std::vector<PointResult>& results);
std::string results_markdown(const SweepPlan& plan, const std::vector<PointResult>& results);

// Writes <plan.dir>/results.csv and results.md (each atomically); returns their paths.
std::pair<std::string, std::string> write_results(const SweepPlan& plan, const std::vector<PointResult>& results);

}  // namespace am
