#include "cpu/ops_swiglu.h"

#include "cpu/parallel.h"

#include <cmath>

namespace am::cpu {

namespace {
template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}
}  // namespace

template <typename T>
void silu_forward(T* y, const T* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid(x[i]);
}

template <typename T>
void silu_backward(T* dx, const T* dy, const T* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    const T s = sigmoid(x[i]);
    dx[i] += dy[i] * s * (T(1) + x[i] * (T(1) - s));
  }
}

template <typename T>
void swiglu_forward(T* h, const T* g, const T* u, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) h[i] = g[i] * sigmoid(g[i]) * u[i];
}

template <typename T>
void swiglu_backward(T* dg, T* du, const T* dh, const T* g, const T* u, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    const T x = g[i], s = sigmoid(x), d = dh[i], up = u[i];
    dg[i] = d * up * s * (T(1) + x * (T(1) - s));
    du[i] = d * x * s;
  }
}

#define AM_INSTANTIATE(T)                                           \
  template void silu_forward<T>(T*, const T*, int64_t);             \
  template void silu_backward<T>(T*, const T*, const T*, int64_t);  \
  template void swiglu_forward<T>(T*, const T*, const T*, int64_t); \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t);
AM_INSTANTIATE(float)
AM_INSTANTIATE(double)
#undef AM_INSTANTIATE

}  // namespace am::cpu
