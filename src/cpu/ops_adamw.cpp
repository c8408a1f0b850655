#include "cpu/ops_adamw.h"

#include "core/error.h"
#include "cpu/parallel.h"

#include <cmath>

namespace am::cpu {

template <typename T>
bool adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, const AdamWStep& s) {
  const double bc1 = 1.0 - std::pow(s.beta1, static_cast<double>(s.step));
  const double bc2 = 1.0 - std::pow(s.beta2, static_cast<double>(s.step));
  bool bad = false;
#pragma omp parallel for schedule(static) if (n >= kParallelGrain) reduction(|| : bad)
  for (int64_t i = 0; i < n; ++i) {
    const double g = grad[i] * s.grad_scale;
    const double mi = s.beta1 * m[i] + (1.0 - s.beta1) * g;
    const double vi = s.beta2 * v[i] + (1.0 - s.beta2) * g * g;
    m[i] = static_cast<T>(mi);
    v[i] = static_cast<T>(vi);
    double p = param[i];
    p -= s.lr * s.weight_decay * p;
    p -= s.lr * (mi / bc1) / (std::sqrt(vi / bc2) + s.eps);
    param[i] = static_cast<T>(p);
    bad = bad || !std::isfinite(param[i]) || !std::isfinite(m[i]) || !std::isfinite(v[i]);
  }
  return !bad;
}

template bool adamw_update<float>(float*, const float*, float*, float*, int64_t, const AdamWStep&);
template bool adamw_update<double>(double*, const double*, double*, double*, int64_t, const AdamWStep&);

}  // namespace am::cpu
