#include "cpu/ops_attention.h"

#include "core/error.h"
#include "cpu/parallel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace am::cpu {

namespace {

// <a, b> with 8 interleaved partial sums (lane i % 8) added in a fixed tree at the end: a
// fixed order, like a plain loop, but the compiler can keep the lanes in vector registers
// instead of waiting on one long chain of dependent additions.
double dot(const double* a, const double* b, int64_t n) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) lane[l] += a[i + l] * b[i + l];
  }
  for (; i < n; ++i) lane[0] += a[i] * b[i];
  return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

// Copies head `head` (offset `col` within a row) of all T rows of batch b into dst (T, hd).
template <typename T>
void load_head(double* dst, const T* src, const AttnShape& s, int64_t b, int64_t col, int64_t row_dim) {
  for (int64_t t = 0; t < s.T; ++t) {
    const T* r = src + (b * s.T + t) * row_dim + col;
    for (int64_t i = 0; i < s.head_dim; ++i) dst[t * s.head_dim + i] = r[i];
  }
}

}  // namespace

template <typename T>
void attention_forward(T* out, T* lse, const T* qkv, const AttnShape& s) {
  const int64_t hd = s.head_dim, row = s.qkv_dim(), group = s.n_heads / s.n_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const int64_t tasks = s.B * s.n_heads;
#pragma omp parallel if (tasks * s.T * s.T * hd >= kParallelGrain)
  {
    std::vector<double> q(s.T * hd), k(s.T * hd), v(s.T * hd), p(s.T), o(hd);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / s.n_heads, h = task % s.n_heads, g = h / group;
      load_head(q.data(), qkv, s, b, h * hd, row);
      load_head(k.data(), qkv, s, b, s.q_dim() + g * hd, row);
      load_head(v.data(), qkv, s, b, s.q_dim() + s.kv_dim() + g * hd, row);
      for (int64_t t = 0; t < s.T; ++t) {
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j <= t; ++j) {
          p[j] = scale * dot(&q[t * hd], &k[j * hd], hd);
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= t; ++j) {
          p[j] = std::exp(p[j] - mx);
          sum += p[j];
        }
        std::fill(o.begin(), o.end(), 0.0);
        for (int64_t j = 0; j <= t; ++j) {
          for (int64_t i = 0; i < hd; ++i) o[i] += p[j] * v[j * hd + i];
        }
        T* dst = out + (b * s.T + t) * s.q_dim() + h * hd;
        for (int64_t i = 0; i < hd; ++i) dst[i] = static_cast<T>(o[i] / sum);
        lse[(b * s.n_heads + h) * s.T + t] = static_cast<T>(mx + std::log(sum));
      }
    }
  }
}

template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse, const AttnShape& s) {
  const int64_t hd = s.head_dim, row = s.qkv_dim(), group = s.n_heads / s.n_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const int64_t tasks = s.B * s.n_kv_heads;
#pragma omp parallel if (tasks * group * s.T * s.T * hd >= kParallelGrain)
  {
    std::vector<double> q(s.T * hd), k(s.T * hd), v(s.T * hd), go(s.T * hd), o(s.T * hd);
    std::vector<double> dk(s.T * hd), dv(s.T * hd), dq(hd);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / s.n_kv_heads, g = task % s.n_kv_heads;
      load_head(k.data(), qkv, s, b, s.q_dim() + g * hd, row);
      load_head(v.data(), qkv, s, b, s.q_dim() + s.kv_dim() + g * hd, row);
      std::fill(dk.begin(), dk.end(), 0.0);
      std::fill(dv.begin(), dv.end(), 0.0);
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        load_head(q.data(), qkv, s, b, h * hd, row);
        load_head(go.data(), dout, s, b, h * hd, s.q_dim());
        load_head(o.data(), out, s, b, h * hd, s.q_dim());
        const T* lse_h = lse + (b * s.n_heads + h) * s.T;
        for (int64_t t = 0; t < s.T; ++t) {
          const double* qt = &q[t * hd];
          const double* gt = &go[t * hd];
          const double D = dot(gt, &o[t * hd], hd);
          const double l = lse_h[t];
          std::fill(dq.begin(), dq.end(), 0.0);
          for (int64_t j = 0; j <= t; ++j) {
            const double p = std::exp(scale * dot(qt, &k[j * hd], hd) - l);
            const double ds = p * (dot(gt, &v[j * hd], hd) - D);
            for (int64_t i = 0; i < hd; ++i) {
              dq[i] += ds * k[j * hd + i];
              dk[j * hd + i] += ds * qt[i];
              dv[j * hd + i] += p * gt[i];
            }
          }
          T* dst = dqkv + (b * s.T + t) * row + h * hd;
          for (int64_t i = 0; i < hd; ++i) dst[i] = static_cast<T>(scale * dq[i]);
        }
      }
      for (int64_t t = 0; t < s.T; ++t) {
        T* dkr = dqkv + (b * s.T + t) * row + s.q_dim() + g * hd;
        T* dvr = dkr + s.kv_dim();
        for (int64_t i = 0; i < hd; ++i) {
          dkr[i] = static_cast<T>(scale * dk[t * hd + i]);
          dvr[i] = static_cast<T>(dv[t * hd + i]);
        }
      }
    }
  }
}

template <typename T>
void attention_decode(T* out, const T* q, const T* k_cache, const T* v_cache, int64_t n, const AttnShape& s) {
  const int64_t hd = s.head_dim, group = s.n_heads / s.n_kv_heads, kv_dim = s.kv_dim();
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
#pragma omp parallel if (s.n_heads * n * hd >= kParallelGrain)
  {
    std::vector<double> qh(hd), kj(hd), p(n), o(hd);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < s.n_heads; ++h) {
      const int64_t col = (h / group) * hd;  // the kv head's columns in a cache row
      for (int64_t i = 0; i < hd; ++i) qh[i] = q[h * hd + i];
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t i = 0; i < hd; ++i) kj[i] = k_cache[j * kv_dim + col + i];
        p[j] = scale * dot(qh.data(), kj.data(), hd);
        mx = std::max(mx, p[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        p[j] = std::exp(p[j] - mx);
        sum += p[j];
      }
      std::fill(o.begin(), o.end(), 0.0);
      for (int64_t j = 0; j < n; ++j) {
        const T* vj = v_cache + j * kv_dim + col;
        for (int64_t i = 0; i < hd; ++i) o[i] += p[j] * static_cast<double>(vj[i]);
      }
      for (int64_t i = 0; i < hd; ++i) out[h * hd + i] = static_cast<T>(o[i] / sum);
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, const AttnShape&);
template void attention_forward<double>(double*, double*, const double*, const AttnShape&);
template void attention_backward<float>(float*, const float*, const float*, const float*, const float*,
                                        const AttnShape&);
template void attention_backward<double>(double*, const double*, const double*, const double*, const double*,
                                         const AttnShape&);
template void attention_decode<float>(float*, const float*, const float*, const float*, int64_t, const AttnShape&);
template void attention_decode<double>(double*, const double*, const double*, const double*, int64_t, const AttnShape&);

}  // namespace am::cpu
