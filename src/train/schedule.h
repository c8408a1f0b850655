// The learning-rate schedule (docs/training.md has the formulas). step is 0-based: the rate used
// by the optimizer update that completes step `step + 1`.
#pragma once

#include "config/config.h"

#include <algorithm>
#include <cmath>

namespace am {

inline double learning_rate(const TrainConfig& t, int64_t step) {
  if (step < t.warmup_steps) {
    return t.lr * static_cast<double>(step + 1) / static_cast<double>(t.warmup_steps);
  }
  if (t.lr_schedule == "constant" || t.max_steps <= t.warmup_steps) return t.lr;
  const double progress =
      std::min(1.0, static_cast<double>(step - t.warmup_steps) / static_cast<double>(t.max_steps - t.warmup_steps));
  if (t.lr_schedule == "linear") return t.min_lr + (t.lr - t.min_lr) * (1.0 - progress);
  // cosine
  return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace am
