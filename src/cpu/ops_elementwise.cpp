#include "cpu/ops_elementwise.h"

#include "cpu/parallel.h"

#include <algorithm>
#include <vector>

namespace am::cpu {

template <typename T>
void add(T* out, const T* a, const T* b, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <typename T>
void axpy(T* y, const T* x, double alpha, int64_t n) {
  const T a = static_cast<T>(alpha);
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

template <typename T>
void scale(T* x, double s, int64_t n) {
  const T a = static_cast<T>(s);
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

template <typename T>
double sum_squares(const T* x, int64_t n) {
  return chunked_sum(n, [x](int64_t i) { return static_cast<double>(x[i]) * x[i]; });
}

#define AM_INSTANTIATE(T)                                \
  template void add<T>(T*, const T*, const T*, int64_t); \
  template void axpy<T>(T*, const T*, double, int64_t);  \
  template void scale<T>(T*, double, int64_t);           \
  template double sum_squares<T>(const T*, int64_t);
AM_INSTANTIATE(float)
AM_INSTANTIATE(double)
#undef AM_INSTANTIATE

}  // namespace am::cpu
