#include "cpu/ops_cross_entropy.h"

#include "core/error.h"
#include "cpu/parallel.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace am::cpu {

namespace {

void check_targets(const int32_t* targets, int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; ++i) {
    AM_CHECK(targets[i] < V, "target {} of row {} is >= the vocabulary size {}", targets[i], i, V);
  }
}

// Row maximum (an element, so exact in T) and sum of exp(x - max), the exps in T (expf is much
// cheaper than exp; each is accurate to an ulp of T) summed in double.
template <typename T>
void row_stats(const T* x, int64_t V, T& mx, double& sum) {
  mx = x[0];
  for (int64_t j = 1; j < V; ++j) mx = std::max(mx, x[j]);
  sum = 0;
  for (int64_t j = 0; j < V; ++j) sum += std::exp(x[j] - mx);
}

}  // namespace

template <typename T>
void cross_entropy_forward(T* losses, const T* logits, const int32_t* targets, int64_t N, int64_t V) {
  check_targets(targets, N, V);
#pragma omp parallel for schedule(static) if (N * V >= kParallelGrain)
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] < 0) {
      losses[i] = 0;
      continue;
    }
    const T* x = logits + i * V;
    T mx;
    double sum;
    row_stats(x, V, mx, sum);
    losses[i] = static_cast<T>(static_cast<double>(mx) + std::log(sum) - x[targets[i]]);
  }
}

template <typename T>
void cross_entropy_backward(T* dlogits, const T* logits, const int32_t* targets, int64_t N, int64_t V,
                            double grad_scale) {
  check_targets(targets, N, V);
#pragma omp parallel if (N * V >= kParallelGrain)
  {
    std::vector<double> e(static_cast<size_t>(V));  // exp(x - max) of the current row
#pragma omp for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      const T* x = logits + i * V;
      T* g = dlogits + i * V;  // may be x: the row is read whole (into e) before it is written
      const int32_t y = targets[i];
      if (y < 0) {
        std::fill(g, g + V, T(0));
        continue;
      }
      T mx = x[0];
      for (int64_t j = 1; j < V; ++j) mx = std::max(mx, x[j]);
      double sum = 0;
      for (int64_t j = 0; j < V; ++j) {
        e[j] = std::exp(x[j] - mx);
        sum += e[j];
      }
      const double k = grad_scale / sum;
      for (int64_t j = 0; j < V; ++j) g[j] = static_cast<T>(e[j] * k);
      g[y] = static_cast<T>(grad_scale * (e[y] / sum - 1.0));
    }
  }
}

template void cross_entropy_forward<float>(float*, const float*, const int32_t*, int64_t, int64_t);
template void cross_entropy_forward<double>(double*, const double*, const int32_t*, int64_t, int64_t);
template void cross_entropy_backward<float>(float*, const float*, const int32_t*, int64_t, int64_t, double);
template void cross_entropy_backward<double>(double*, const double*, const int32_t*, int64_t, int64_t, double);

}  // namespace am::cpu
