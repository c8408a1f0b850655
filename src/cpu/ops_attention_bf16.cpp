#include "cpu/ops_attention_bf16.h"

#include "core/bf16.h"
#include "core/error.h"
#include "cpu/parallel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace am::cpu {

namespace {

double dot(const double* a, const double* b, int64_t n) {
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

// x, or x rounded to bf16 (through float, as the GPU rounds its fp32 values).
double rnd(double x, bool round) { return round ? double(bf16_round(static_cast<float>(x))) : x; }

// Head `col` (hd columns) of the T rows of batch b, rounded or not, into dst (T, hd).
template <typename T>
void load_head(double* dst, const T* src, const AttnShape& s, int64_t b, int64_t col, int64_t row_dim, bool round) {
  for (int64_t t = 0; t < s.T; ++t) {
    const T* r = src + (b * s.T + t) * row_dim + col;
    for (int64_t i = 0; i < s.head_dim; ++i) dst[t * s.head_dim + i] = rnd(double(r[i]), round);
  }
}

void check_shape(const AttnShape& s) {
  AM_CHECK(s.B >= 0 && s.T >= 0 && s.head_dim > 0 && s.n_heads > 0 && s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0,
           "bad attention shape B={} T={} H={} Hkv={} hd={}", s.B, s.T, s.n_heads, s.n_kv_heads, s.head_dim);
}

}  // namespace

template <typename T>
void attention_forward_bf16(T* out, T* lse, const T* qkv, const AttnShape& s, bool round) {
  check_shape(s);
  const int64_t hd = s.head_dim, row = s.qkv_dim(), group = s.n_heads / s.n_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const int64_t tasks = s.B * s.n_heads;
#pragma omp parallel if (tasks * s.T * s.T * hd >= kParallelGrain)
  {
    std::vector<double> q(s.T * hd), k(s.T * hd), v(s.T * hd), p(s.T), o(hd);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / s.n_heads, h = task % s.n_heads, g = h / group;
      load_head(q.data(), qkv, s, b, h * hd, row, round);
      load_head(k.data(), qkv, s, b, s.q_dim() + g * hd, row, round);
      load_head(v.data(), qkv, s, b, s.q_dim() + s.kv_dim() + g * hd, row, round);
      for (int64_t t = 0; t < s.T; ++t) {
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j <= t; ++j) {
          p[j] = scale * dot(&q[t * hd], &k[j * hd], hd);
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        std::fill(o.begin(), o.end(), 0.0);
        for (int64_t j = 0; j <= t; ++j) {
          const double pj = std::exp(p[j] - mx);
          sum += pj;
          const double pr = rnd(pj, round);
          for (int64_t i = 0; i < hd; ++i) o[i] += pr * v[j * hd + i];
        }
        T* dst = out + (b * s.T + t) * s.q_dim() + h * hd;
        for (int64_t i = 0; i < hd; ++i) dst[i] = static_cast<T>(o[i] / sum);
        lse[(b * s.n_heads + h) * s.T + t] = static_cast<T>(mx + std::log(sum));
      }
    }
  }
}

template <typename T>
void attention_backward_bf16(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse, const AttnShape& s,
                             bool round) {
  check_shape(s);
  const int64_t hd = s.head_dim, row = s.qkv_dim(), group = s.n_heads / s.n_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const int64_t tasks = s.B * s.n_kv_heads;
#pragma omp parallel if (tasks * group * s.T * s.T * hd >= kParallelGrain)
  {
    std::vector<double> q(s.T * hd), k(s.T * hd), v(s.T * hd), go(s.T * hd), gr(s.T * hd), o(s.T * hd);
    std::vector<double> dk(s.T * hd), dv(s.T * hd), dq(hd);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / s.n_kv_heads, g = task % s.n_kv_heads;
      load_head(k.data(), qkv, s, b, s.q_dim() + g * hd, row, round);
      load_head(v.data(), qkv, s, b, s.q_dim() + s.kv_dim() + g * hd, row, round);
      std::fill(dk.begin(), dk.end(), 0.0);
      std::fill(dv.begin(), dv.end(), 0.0);
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        load_head(q.data(), qkv, s, b, h * hd, row, round);
        load_head(go.data(), dout, s, b, h * hd, s.q_dim(), false);
        load_head(gr.data(), dout, s, b, h * hd, s.q_dim(), round);
        load_head(o.data(), out, s, b, h * hd, s.q_dim(), false);
        const T* lse_h = lse + (b * s.n_heads + h) * s.T;
        for (int64_t t = 0; t < s.T; ++t) {
          const double* qt = &q[t * hd];
          const double* gt = &gr[t * hd];
          const double D = dot(&go[t * hd], &o[t * hd], hd);
          const double l = lse_h[t];
          std::fill(dq.begin(), dq.end(), 0.0);
          for (int64_t j = 0; j <= t; ++j) {
            const double p = std::exp(scale * dot(qt, &k[j * hd], hd) - l);
            const double ds = rnd(p * (dot(gt, &v[j * hd], hd) - D), round);
            const double pr = rnd(p, round);
            for (int64_t i = 0; i < hd; ++i) {
              dq[i] += ds * k[j * hd + i];
              dk[j * hd + i] += ds * qt[i];
              dv[j * hd + i] += pr * gt[i];
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

template void attention_forward_bf16<float>(float*, float*, const float*, const AttnShape&, bool);
template void attention_forward_bf16<double>(double*, double*, const double*, const AttnShape&, bool);
template void attention_backward_bf16<float>(float*, const float*, const float*, const float*, const float*,
                                             const AttnShape&, bool);
template void attention_backward_bf16<double>(double*, const double*, const double*, const double*, const double*,
                                              const AttnShape&, bool);

}  // namespace am::cpu
