// Shapes derived from the MoE config: an expert's hidden width (its expert strategy's: d_ffn, or
// AoE Eq. 5 for factorized experts) and the per-expert capacity of expert-choice selection.
#include <cmath>

#include "config/config.h"
#include "config/strategy.h"

namespace am {

bool MoeConfig::dense() const { return scorer_of(*this).dense; }

int MoeConfig::hidden_width(int d_model) const { return expert_of(*this).hidden_width(*this, d_model); }

int64_t expert_choice_capacity(const MoeConfig& moe, int64_t group_tokens) {
  return std::llround(moe.selector.capacity_factor * static_cast<double>(group_tokens) / moe.n_experts);
}

}  // namespace am
