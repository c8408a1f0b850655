#include "cpu/ops_softmax.h"

#include "cpu/parallel.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

namespace am::cpu {

namespace {

template <typename T>
double row_max(const T* z, int64_t n) {
  double mx = z[0];
  for (int64_t j = 1; j < n; ++j) mx = std::max(mx, static_cast<double>(z[j]));
  return mx;
}

}  // namespace

template <typename T>
void softmax_rows(T* p, const T* z, int64_t N, int64_t n) {
  if (n == 0) return;
#pragma omp parallel for schedule(static) if (N * n >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    const T* zr = z + t * n;
    T* pr = p + t * n;
    const double mx = row_max(zr, n);
    double sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += std::exp(zr[j] - mx);
    const double inv = 1.0 / sum;
    // Reads zr[j] before writing pr[j]: safe when p aliases z.
    for (int64_t j = 0; j < n; ++j) pr[j] = static_cast<T>(std::exp(zr[j] - mx) * inv);
  }
}

template <typename T>
void softmax_rows_backward(T* dz, const T* dp, const T* p, int64_t N, int64_t n) {
#pragma omp parallel for schedule(static) if (N * n >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    const T* g = dp + t * n;
    const T* pr = p + t * n;
    double c = 0;
    for (int64_t j = 0; j < n; ++j) c += static_cast<double>(g[j]) * pr[j];
    T* o = dz + t * n;
    for (int64_t j = 0; j < n; ++j) o[j] += static_cast<T>(pr[j] * (g[j] - c));
  }
}

template <typename T>
void logsumexp_rows(T* out, const T* z, int64_t N, int64_t n) {
#pragma omp parallel for schedule(static) if (N * n >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    const T* zr = z + t * n;
    if (n == 0) {
      out[t] = static_cast<T>(-INFINITY);
      continue;
    }
    const double mx = row_max(zr, n);
    double sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += std::exp(zr[j] - mx);
    out[t] = static_cast<T>(mx + std::log(sum));
  }
}

template <typename T>
void axpy_rows(T* y, const T* x, const T* s, double alpha, int64_t N, int64_t n) {
#pragma omp parallel for schedule(static) if (N * n >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    const double a = alpha * s[t];
    for (int64_t j = 0; j < n; ++j) y[t * n + j] += static_cast<T>(a * x[t * n + j]);
  }
}

template <typename T>
std::vector<double> column_sums(const T* x, int64_t N, int64_t n) {
  std::vector<double> out(static_cast<size_t>(n), 0.0);
#pragma omp parallel if (N * n >= kParallelGrain)
  {
    // This thread owns columns [j0, j1) and sums them over rows 0..N-1 in order.
    const int parts = omp_get_num_threads();
    const int me = omp_get_thread_num();
    const int64_t j0 = part_begin(n, me, parts), j1 = part_begin(n, me + 1, parts);
    std::vector<double> acc(static_cast<size_t>(j1 - j0), 0.0);  // local: no false sharing
    for (int64_t t = 0; t < N; ++t) {
      for (int64_t j = j0; j < j1; ++j) acc[j - j0] += x[t * n + j];
    }
    std::copy(acc.begin(), acc.end(), out.begin() + j0);
  }
  return out;
}

template <typename T>
void add_to_rows(T* x, const double* v, int64_t N, int64_t n) {
#pragma omp parallel for schedule(static) if (N * n >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    for (int64_t j = 0; j < n; ++j) x[t * n + j] = static_cast<T>(x[t * n + j] + v[j]);
  }
}

#define AM_INSTANTIATE(T)                                                           \
  template void softmax_rows<T>(T*, const T*, int64_t, int64_t);                    \
  template void softmax_rows_backward<T>(T*, const T*, const T*, int64_t, int64_t); \
  template void logsumexp_rows<T>(T*, const T*, int64_t, int64_t);                  \
  template void axpy_rows<T>(T*, const T*, const T*, double, int64_t, int64_t);     \
  template std::vector<double> column_sums<T>(const T*, int64_t, int64_t);          \
  template void add_to_rows<T>(T*, const double*, int64_t, int64_t);
AM_INSTANTIATE(float)
AM_INSTANTIATE(double)
#undef AM_INSTANTIATE

}  // namespace am::cpu
