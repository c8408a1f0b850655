#include "cpu/ops_entropy.h"

#include "cpu/parallel.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace am::cpu {

template <typename T>
double entropy_sum(const T* p, int64_t n) {
  return chunked_sum(n, [p](int64_t i) {
    const double v = p[i];
    return v != 0 ? -v * std::log(v) : 0.0;
  });
}

template <typename T>
void entropy_backward(T* dp, const T* p, int64_t n, double scale) {
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    const double v = p[i];
    if (v > 0) dp[i] = static_cast<T>(dp[i] - scale * (std::log(v) + 1.0));
  }
}

template double entropy_sum<float>(const float*, int64_t);
template double entropy_sum<double>(const double*, int64_t);
template void entropy_backward<float>(float*, const float*, int64_t, double);
template void entropy_backward<double>(double*, const double*, int64_t, double);

}  // namespace am::cpu
