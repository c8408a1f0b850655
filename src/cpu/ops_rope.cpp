#include "cpu/ops_rope.h"

#include "core/error.h"
#include "cpu/parallel.h"

#include <cmath>
#include <vector>

namespace am::cpu {

namespace {

// Rotates every q and k head of every (b, t) row, position start + t, by the angle times `sign`
// (+1 forward, -1 for the transpose). cos/sin are computed once per call in double, table (T, hd/2).
template <typename T>
void rope_apply(T* qkv, const AttnShape& s, double theta, double sign, int64_t start) {
  const int64_t half = s.head_dim / 2;
  std::vector<double> cs(static_cast<size_t>(s.T * half)), sn(cs.size());
  for (int64_t t = 0; t < s.T; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double inv_freq = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(s.head_dim));
      const double angle = static_cast<double>(start + t) * inv_freq;
      cs[t * half + i] = std::cos(angle);
      sn[t * half + i] = sign * std::sin(angle);
    }
  }
  const int64_t rows = s.B * s.T;
  const int64_t rotated_heads = s.n_heads + s.n_kv_heads;  // q heads then k heads, contiguous
  const int64_t row_dim = s.qkv_dim();
#pragma omp parallel for schedule(static) if (rows * rotated_heads * s.head_dim >= kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = r % s.T;
    const double* c = cs.data() + t * half;
    const double* sv = sn.data() + t * half;
    for (int64_t h = 0; h < rotated_heads; ++h) {
      T* x = qkv + r * row_dim + h * s.head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const double a = x[i], b = x[i + half];
        x[i] = static_cast<T>(a * c[i] - b * sv[i]);
        x[i + half] = static_cast<T>(b * c[i] + a * sv[i]);
      }
    }
  }
}

}  // namespace

template <typename T>
void rope_forward(T* qkv, const AttnShape& s, double theta, int64_t start) {
  rope_apply(qkv, s, theta, 1.0, start);
}

template <typename T>
void rope_backward(T* dqkv, const AttnShape& s, double theta) {
  rope_apply(dqkv, s, theta, -1.0, 0);
}

template void rope_forward<float>(float*, const AttnShape&, double, int64_t);
template void rope_forward<double>(double*, const AttnShape&, double, int64_t);
template void rope_backward<float>(float*, const AttnShape&, double);
template void rope_backward<double>(double*, const AttnShape&, double);

}  // namespace am::cpu
