#include "cpu/ops_topk.h"

#include "core/error.h"
#include "cpu/parallel.h"

#include <cmath>
#include <vector>

namespace am::cpu {

template <typename T>
void topk_select(int32_t* slot_expert, T* slot_gate, const T* scores, int64_t N, int64_t n,
                 int64_t k) {
  AM_CHECK(k >= 1 && k <= n, "top-k with k = {} of {} experts", k, n);
#pragma omp parallel if (N * n * k >= kParallelGrain)
  {
    std::vector<char> taken(static_cast<size_t>(n));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < N; ++t) {
      const T* s = scores + t * n;
      int32_t* ex = slot_expert + t * k;
      T* gate = slot_gate + t * k;
      std::fill(taken.begin(), taken.end(), 0);
      // k passes of a linear scan: the strict '>' keeps the lower index on ties.
      for (int64_t j = 0; j < k; ++j) {
        int64_t best = -1;
        for (int64_t e = 0; e < n; ++e) {
          if (taken[e]) continue;
          if (best < 0 || s[e] > s[best] || (std::isnan(s[best]) && !std::isnan(s[e]))) best = e;
        }
        taken[best] = 1;
        ex[j] = static_cast<int32_t>(best);
      }
      // Softmax of the selected scores; the first one is the largest.
      const double mx = s[ex[0]];
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) sum += std::exp(s[ex[j]] - mx);
      for (int64_t j = 0; j < k; ++j) gate[j] = static_cast<T>(std::exp(s[ex[j]] - mx) / sum);
    }
  }
}

template <typename T>
void topk_select_backward(T* dscores, const T* dslot_gate, const int32_t* slot_expert,
                          const T* slot_gate, int64_t N, int64_t n, int64_t k) {
  for (int64_t i = 0; i < N * k; ++i) {
    AM_CHECK(slot_expert[i] >= -1 && slot_expert[i] < n, "slot {} holds expert {} of {}", i,
             slot_expert[i], n);
  }
#pragma omp parallel for schedule(static) if (N * k >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    const int32_t* ex = slot_expert + t * k;
    const T* g = slot_gate + t * k;
    const T* dg = dslot_gate + t * k;
    double c = 0;  // sum_l g_l dg_l over the filled slots
    for (int64_t j = 0; j < k; ++j) {
      if (ex[j] >= 0) c += static_cast<double>(g[j]) * dg[j];
    }
    T* ds = dscores + t * n;
    for (int64_t j = 0; j < k; ++j) {
      if (ex[j] >= 0) ds[ex[j]] += static_cast<T>(g[j] * (dg[j] - c));
    }
  }
}

template void topk_select<float>(int32_t*, float*, const float*, int64_t, int64_t, int64_t);
template void topk_select<double>(int32_t*, double*, const double*, int64_t, int64_t, int64_t);
template void topk_select_backward<float>(float*, const float*, const int32_t*, const float*,
                                          int64_t, int64_t, int64_t);
template void topk_select_backward<double>(double*, const double*, const int32_t*, const double*,
                                           int64_t, int64_t, int64_t);

}  // namespace am::cpu
