#include "cpu/ops_rmsnorm.h"

#include "cpu/parallel.h"

#include <omp.h>

#include <cmath>
#include <vector>

namespace am::cpu {

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t N, int64_t d, double eps) {
#pragma omp parallel for schedule(static) if (N * d >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    const T* xr = x + t * d;
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(xr[j]) * xr[j];
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
    rstd[t] = static_cast<T>(r);
    T* o = out + t * d;
    for (int64_t j = 0; j < d; ++j) o[j] = static_cast<T>(xr[j] * r * w[j]);
  }
}

template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int64_t N, int64_t d) {
  const bool par = N * d >= kParallelGrain;
  // dx: one row per iteration.
#pragma omp parallel for schedule(static) if (par)
  for (int64_t t = 0; t < N; ++t) {
    const T* xr = x + t * d;
    const T* gr = dout + t * d;
    const double r = rstd[t];
    double c = 0;  // sum_j w_j dout_j x_j
    for (int64_t j = 0; j < d; ++j) c += static_cast<double>(w[j]) * gr[j] * xr[j];
    const double k = r * r * c / static_cast<double>(d);
    T* o = dx + t * d;
    for (int64_t j = 0; j < d; ++j) o[j] += static_cast<T>(r * (w[j] * static_cast<double>(gr[j]) - xr[j] * k));
  }
  // dw: threads own column ranges; each column is summed over rows 0..N-1 in order.
#pragma omp parallel if (par)
  {
    const int parts = omp_get_num_threads();
    const int me = omp_get_thread_num();
    const int64_t j0 = part_begin(d, me, parts), j1 = part_begin(d, me + 1, parts);
    std::vector<double> acc(static_cast<size_t>(j1 - j0), 0.0);
    for (int64_t t = 0; t < N; ++t) {
      const T* xr = x + t * d;
      const T* gr = dout + t * d;
      const double r = rstd[t];
      for (int64_t j = j0; j < j1; ++j) acc[j - j0] += static_cast<double>(gr[j]) * xr[j] * r;
    }
    for (int64_t j = j0; j < j1; ++j) dw[j] += static_cast<T>(acc[j - j0]);
  }
}

#define AM_INSTANTIATE(T)                                                                 \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, double); \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t);
AM_INSTANTIATE(float)
AM_INSTANTIATE(double)
#undef AM_INSTANTIATE

}  // namespace am::cpu
