#include "cpu/ops_select.h"

#include "core/error.h"
#include "cpu/parallel.h"
#include "cpu/select_order.h"
#include "cpu/slot_ids.h"

#include <algorithm>
#include <numeric>
#include <vector>

namespace am::cpu {

template <typename T>
void topp_select(int32_t* slot_expert, T* slot_gate, const T* probs, int64_t N, int64_t n, int64_t kmax, double p,
                 bool renormalize) {
  const int64_t limit = std::min(n, kmax);
#pragma omp parallel if (N * n * limit >= kParallelGrain)
  {
    std::vector<char> taken(static_cast<size_t>(n));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < N; ++t) {
      const T* pr = probs + t * n;
      int32_t* ex = slot_expert + t * kmax;
      T* gate = slot_gate + t * kmax;
      std::fill(taken.begin(), taken.end(), 0);
      // One linear scan per kept expert (kmax is small): the next preferred id.
      double cum = 0;
      int64_t m = 0;
      while (m < limit && !(cum >= p)) {
        int64_t best = -1;
        for (int64_t e = 0; e < n; ++e) {
          if (!taken[e] && (best < 0 || preferred(pr[e], e, pr[best], best))) best = e;
        }
        taken[best] = 1;
        ex[m++] = static_cast<int32_t>(best);
        cum += pr[best];
      }
      const double inv = renormalize ? (cum > 0 ? 1.0 / cum : 0.0) : 1.0;
      for (int64_t j = 0; j < m; ++j) gate[j] = static_cast<T>(pr[ex[j]] * inv);
      for (int64_t j = m; j < kmax; ++j) {
        ex[j] = -1;
        gate[j] = T(0);
      }
    }
  }
}

template <typename T>
void topp_select_backward(T* dprobs, const T* dslot_gate, const int32_t* slot_expert, const T* slot_gate,
                          const T* probs, int64_t N, int64_t n, int64_t kmax, bool renormalize) {
  check_slot_ids(slot_expert, N * kmax, n);
#pragma omp parallel for schedule(static) if (N * kmax >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    const int32_t* ex = slot_expert + t * kmax;
    const T* g = slot_gate + t * kmax;
    const T* dg = dslot_gate + t * kmax;
    const T* pr = probs + t * n;
    T* dp = dprobs + t * n;
    if (!renormalize) {
      for (int64_t j = 0; j < kmax; ++j) {
        if (ex[j] >= 0) dp[ex[j]] += dg[j];
      }
      continue;
    }
    double S = 0, c = 0;  // the kept mass and sum_l g_l dg_l
    for (int64_t j = 0; j < kmax; ++j) {
      if (ex[j] < 0) continue;
      S += pr[ex[j]];
      c += static_cast<double>(g[j]) * dg[j];
    }
    if (!(S > 0)) continue;  // nothing kept (or a zero row): the gates were 0, constant
    for (int64_t j = 0; j < kmax; ++j) {
      if (ex[j] >= 0) dp[ex[j]] += static_cast<T>((dg[j] - c) / S);
    }
  }
}

template <typename T>
void expert_choice_select(int32_t* slot_expert, T* slot_gate, const T* probs, int64_t N, int64_t n, int64_t group,
                          int64_t capacity) {
  std::fill(slot_expert, slot_expert + N * n, -1);
  std::fill(slot_gate, slot_gate + N * n, T(0));
  const int64_t tasks = (N / group) * n;  // (group, expert) pairs; each writes its own entries
#pragma omp parallel if (N * n >= kParallelGrain)
  {
    std::vector<int64_t> rows(static_cast<size_t>(group));
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t t0 = (task / n) * group, e = task % n;
      std::iota(rows.begin(), rows.end(), t0);
      // The set of the `capacity` first rows under a strict total order is unique.
      std::nth_element(rows.begin(), rows.begin() + capacity, rows.end(),
                       [&](int64_t a, int64_t b) { return preferred(probs[a * n + e], a, probs[b * n + e], b); });
      for (int64_t i = 0; i < capacity; ++i) {
        const int64_t at = rows[i] * n + e;
        slot_expert[at] = static_cast<int32_t>(e);
        slot_gate[at] = probs[at];
      }
    }
  }
}

template <typename T>
void expert_choice_select_backward(T* dprobs, const T* dslot_gate, const int32_t* slot_expert, int64_t N, int64_t n) {
  for (int64_t i = 0; i < N * n; ++i) {
    AM_CHECK(slot_expert[i] == -1 || slot_expert[i] == i % n, "expert-choice slot [{}][{}] holds {}, expected {} or -1",
             i / n, i % n, slot_expert[i], i % n);
  }
#pragma omp parallel for schedule(static) if (N * n >= kParallelGrain)
  for (int64_t i = 0; i < N * n; ++i) {
    if (slot_expert[i] >= 0) dprobs[i] += dslot_gate[i];
  }
}

#define AM_INSTANTIATE(T)                                                                                            \
  template void topp_select<T>(int32_t*, T*, const T*, int64_t, int64_t, int64_t, double, bool);                     \
  template void topp_select_backward<T>(T*, const T*, const int32_t*, const T*, const T*, int64_t, int64_t, int64_t, \
                                        bool);                                                                       \
  template void expert_choice_select<T>(int32_t*, T*, const T*, int64_t, int64_t, int64_t, int64_t);                 \
  template void expert_choice_select_backward<T>(T*, const T*, const int32_t*, int64_t, int64_t);
AM_INSTANTIATE(float)
AM_INSTANTIATE(double)
#undef AM_INSTANTIATE

}  // namespace am::cpu
