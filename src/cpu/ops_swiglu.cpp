#include "cpu/ops_swiglu.h"

#include "cpu/parallel.h"

#include <cmath>

namespace am::cpu {

namespace {
// In T: element-wise, no reduction to protect, and expf is much cheaper than exp.
template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}
}  // namespace

template <typename T>
void swiglu_forward(T* h, const T* gu, int64_t M, int64_t f) {
#pragma omp parallel for schedule(static) if (M * f >= kParallelGrain)
  for (int64_t r = 0; r < M; ++r) {
    const T* gate = gu + r * 2 * f;
    const T* up = gate + f;
    T* o = h + r * f;
    for (int64_t i = 0; i < f; ++i) o[i] = gate[i] * sigmoid(gate[i]) * up[i];
  }
}

template <typename T>
void swiglu_backward(T* dgu, const T* dh, const T* gu, int64_t M, int64_t f) {
#pragma omp parallel for schedule(static) if (M * f >= kParallelGrain)
  for (int64_t r = 0; r < M; ++r) {
    const T* gate = gu + r * 2 * f;
    const T* up = gate + f;
    const T* d = dh + r * f;
    T* dgate = dgu + r * 2 * f;
    T* dup = dgate + f;
    for (int64_t i = 0; i < f; ++i) {
      const T g = gate[i], s = sigmoid(g);
      dgate[i] = d[i] * up[i] * s * (T(1) + g * (T(1) - s));
      dup[i] = d[i] * g * s;
    }
  }
}

template void swiglu_forward<float>(float*, const float*, int64_t, int64_t);
template void swiglu_forward<double>(double*, const double*, int64_t, int64_t);
template void swiglu_backward<float>(float*, const float*, const float*, int64_t, int64_t);
template void swiglu_backward<double>(double*, const double*, const double*, int64_t, int64_t);

}  // namespace am::cpu
