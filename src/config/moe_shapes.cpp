// Shapes derived from the MoE config: an expert's hidden width (AoE Eq. 5 for factorized
// experts) and the per-expert capacity of expert-choice selection.
#include <cmath>

#include "config/config.h"

namespace am {

int MoeConfig::hidden_width(int d_model) const {
  if (expert.type != "factorized") return d_ffn;
  if (expert.d_wide > 0) return expert.d_wide;
  // AoE Eq. 5: d_low d + d_low w + 2 d w = 3 d d_ffn (the parameters of a SwiGLU expert).
  const double d = d_model, f = d_ffn, low = expert.d_low;
  const double exact = (3 * d * f - low * d) / (low + 2 * d);
  const int64_t nearest = std::llround(exact);
  const int64_t m = expert.multiple_of > 0 ? expert.multiple_of : 1;
  return static_cast<int>(std::llround(static_cast<double>(nearest) / m) * m);
}

int64_t expert_choice_capacity(const MoeConfig& moe, int64_t group_tokens) {
  return std::llround(moe.selector.capacity_factor * static_cast<double>(group_tokens) / moe.n_experts);
}

}  // namespace am
