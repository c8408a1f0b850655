// Entropy of probability rows: the confidence-entropy loss and metric (Huang et al. 2024; AoE
// Eq. 8; ../shared/spec/selection.md §4, §5). Any shape: every entry contributes.
#pragma once

#include <cstdint>

namespace am::cpu {

// sum_i -p_i log p_i over n entries, with 0 log 0 = 0 (a negative p gives NaN: a caller bug).
// In double, over chunks of kReduceChunk entries whose partial sums are added in chunk order, so
// the bits do not depend on the thread count.
template <typename T>
double entropy_sum(const T* p, int64_t n);

// dp (n) acc += -scale (log p + 1) where p > 0; entries with p <= 0 are left as they are.
template <typename T>
void entropy_backward(T* dp, const T* p, int64_t n, double scale);

}  // namespace am::cpu
