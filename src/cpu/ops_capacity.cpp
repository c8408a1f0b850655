#include "cpu/ops_capacity.h"

#include "core/error.h"
#include "cpu/parallel.h"
#include "cpu/select_order.h"

#include <algorithm>

namespace am::cpu {

template <typename T>
void capacity_route(int32_t* routed, const int32_t* slot_expert, const T* scores, int64_t N, int64_t kmax,
                    int64_t n_scores, int64_t n_true, int64_t capacity) {
  const int64_t slots = N * kmax;
  // Null ids -> -1, and a stable counting sort of the true assignments by expert.
  std::vector<int64_t> off(static_cast<size_t>(n_true + 1), 0);
  for (int64_t i = 0; i < slots; ++i) {
    const int32_t e = slot_expert[i];
    AM_CHECK(e >= -1, "slot {} holds expert {}", i, e);
    routed[i] = e < n_true ? e : -1;
    if (routed[i] >= 0) ++off[e + 1];
  }
  if (capacity == 0) return;
  for (int64_t e = 0; e < n_true; ++e) off[e + 1] += off[e];
  std::vector<int64_t> order(static_cast<size_t>(off[n_true]));
  std::vector<int64_t> next(off.begin(), off.end() - 1);
  for (int64_t i = 0; i < slots; ++i) {
    if (routed[i] >= 0) order[next[routed[i]]++] = i;
  }
  // Per over-full expert: keep its `capacity` preferred slots, drop the rest.
#pragma omp parallel for schedule(dynamic, 1) if (slots >= kParallelGrain)
  for (int64_t e = 0; e < n_true; ++e) {
    if (off[e + 1] - off[e] <= capacity) continue;
    const auto first = order.begin() + off[e], last = order.begin() + off[e + 1];
    std::nth_element(first, first + capacity, last, [&](int64_t a, int64_t b) {
      return preferred(scores[(a / kmax) * n_scores + e], a, scores[(b / kmax) * n_scores + e], b);
    });
    for (auto it = first + capacity; it != last; ++it) routed[*it] = -1;
  }
}

int64_t slot_stats(std::vector<int64_t>& per_id, const int32_t* slot_expert, int64_t N, int64_t kmax, int64_t n_total,
                   int64_t n_true) {
  per_id.assign(static_cast<size_t>(n_total), 0);
  int64_t without = 0;
  for (int64_t t = 0; t < N; ++t) {
    bool any_true = false;
    for (int64_t j = 0; j < kmax; ++j) {
      const int32_t e = slot_expert[t * kmax + j];
      AM_CHECK(e >= -1 && e < n_total, "slot {} holds id {}, outside [-1, {})", t * kmax + j, e, n_total);
      if (e < 0) continue;
      ++per_id[e];
      any_true = any_true || e < n_true;
    }
    if (!any_true) ++without;
  }
  return without;
}

template void capacity_route<float>(int32_t*, const int32_t*, const float*, int64_t, int64_t, int64_t, int64_t,
                                    int64_t);
template void capacity_route<double>(int32_t*, const int32_t*, const double*, int64_t, int64_t, int64_t, int64_t,
                                     int64_t);

}  // namespace am::cpu
