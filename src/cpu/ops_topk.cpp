#include "cpu/ops_topk.h"

#include "core/error.h"
#include "cpu/parallel.h"
#include "cpu/select_order.h"
#include "cpu/slot_ids.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace am::cpu {

template <typename T>
void topk_select(int32_t* slot_expert, T* slot_gate, const T* rank_scores, const T* gate_scores, int64_t N,
                 int64_t n_total, int64_t k, int64_t n_true) {
#pragma omp parallel if (N * n_total * k >= kParallelGrain)
  {
    std::vector<char> taken(static_cast<size_t>(n_total));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < N; ++t) {
      const T* r = rank_scores + t * n_total;
      const T* s = gate_scores + t * n_total;
      int32_t* ex = slot_expert + t * k;
      T* gate = slot_gate + t * k;
      std::fill(taken.begin(), taken.end(), 0);
      // k passes of a linear scan in id order: the first preferred id wins.
      for (int64_t j = 0; j < k; ++j) {
        int64_t best = -1;
        for (int64_t e = 0; e < n_total; ++e) {
          if (!taken[e] && (best < 0 || preferred(r[e], e, r[best], best))) best = e;
        }
        taken[best] = 1;
        ex[j] = static_cast<int32_t>(best);
      }
      // Softmax of the gate scores over the selected true experts (in double, max subtracted).
      double mx = -INFINITY;
      for (int64_t j = 0; j < k; ++j) {
        if (ex[j] < n_true) mx = std::max(mx, static_cast<double>(s[ex[j]]));
      }
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) {
        if (ex[j] < n_true) sum += std::exp(s[ex[j]] - mx);
      }
      for (int64_t j = 0; j < k; ++j) {
        gate[j] = ex[j] < n_true ? static_cast<T>(std::exp(s[ex[j]] - mx) / sum) : T(0);
      }
    }
  }
}

template <typename T>
void topk_select_backward(T* dgate_scores, const T* dslot_gate, const int32_t* slot_expert, const T* slot_gate,
                          int64_t N, int64_t n_total, int64_t k, int64_t n_true) {
  check_slot_ids(slot_expert, N * k, n_total);
#pragma omp parallel for schedule(static) if (N * k >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    const int32_t* ex = slot_expert + t * k;
    const T* g = slot_gate + t * k;
    const T* dg = dslot_gate + t * k;
    auto is_true = [&](int64_t j) { return ex[j] >= 0 && ex[j] < n_true; };
    double c = 0;  // sum_l g_l dg_l over the true slots
    for (int64_t j = 0; j < k; ++j) {
      if (is_true(j)) c += static_cast<double>(g[j]) * dg[j];
    }
    T* ds = dgate_scores + t * n_total;
    for (int64_t j = 0; j < k; ++j) {
      if (is_true(j)) ds[ex[j]] += static_cast<T>(g[j] * (dg[j] - c));
    }
  }
}

#define AM_INSTANTIATE(T)                                                                             \
  template void topk_select<T>(int32_t*, T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t); \
  template void topk_select_backward<T>(T*, const T*, const int32_t*, const T*, int64_t, int64_t, int64_t, int64_t);
AM_INSTANTIATE(float)
AM_INSTANTIATE(double)
#undef AM_INSTANTIATE

}  // namespace am::cpu
