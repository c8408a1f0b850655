// CpuBackend: the MoE layer's statistics and auxiliary-loss values as F64 vectors in backend
// memory (Backend, "the MoE layer on the device"). Each op is the host computation it replaces in src/moe/,
// moved behind the backend so that the CUDA backend can keep it on the device: the same formulas
// in the same order, so CPU results are bit-identical to the host code they replace.
#include "cpu/cpu_backend.h"
#include "cpu/cpu_checks.h"
#include "cpu/ops_capacity.h"
#include "cpu/ops_elementwise.h"
#include "cpu/ops_entropy.h"
#include "cpu/ops_softmax.h"
#include "cpu/parallel.h"

#include <algorithm>

namespace am {

using namespace am::cpu;

void CpuBackend::column_sums_to_impl(Tensor out, Tensor x) {
  const std::vector<double> s = column_sums(x);
  std::copy(s.begin(), s.end(), out.as<double>());
}

void CpuBackend::entropy_sum_to_impl(Tensor out, Tensor p, double coef, double div) {
  out.as<double>()[0] = coef * entropy_sum(p) / div;
}

void CpuBackend::sum_squares_to_impl(Tensor out, Tensor x, double coef, double div) {
  out.as<double>()[0] = coef * sum_squares(x) / div;
}

void CpuBackend::slot_counts_impl(Tensor counts, Tensor slot_expert, int n_total, int n_true) {
  const SlotStats st = slot_stats(slot_expert, n_total, n_true);
  double* c = counts.as<double>();
  for (int i = 0; i < n_total; ++i) c[i] = static_cast<double>(st.per_id[static_cast<size_t>(i)]);
  c[n_total] = static_cast<double>(st.rows_without_true);
}

void CpuBackend::axpy_f64_impl(Tensor y, Tensor x, double alpha) {
  double* yp = y.as<double>();
  const double* xp = x.as<double>();
  for (int64_t i = 0; i < y.numel(); ++i) yp[i] += alpha * xp[i];
}

void CpuBackend::sum_to_impl(Tensor out, Tensor x) {
  double total = 0;
  for (int64_t i = 0; i < x.numel(); ++i) total += x.as<double>()[i];
  if (out.dtype == DType::F64) {
    out.as<double>()[0] = total;
  } else {
    out.as<float>()[0] = static_cast<float>(total);
  }
}

void CpuBackend::add_vector_to_rows_impl(Tensor x, Tensor v, double alpha) {
  const int64_t N = row_count(x), C = last_dim(x), n = v.numel();
  std::vector<double> w(static_cast<size_t>(n));
  dispatch(v.dtype == DType::F64 ? DType::F64 : dtype_, [&](auto tag) {
    using V = decltype(tag);
    for (int64_t j = 0; j < n; ++j) w[static_cast<size_t>(j)] = static_cast<double>(v.as<V>()[j]) * alpha;
  });
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    T* xp = x.as<T>();
#pragma omp parallel for schedule(static) if (N * n >= kParallelGrain)
    for (int64_t t = 0; t < N; ++t) {
      for (int64_t j = 0; j < n; ++j) xp[t * C + j] = static_cast<T>(xp[t * C + j] + w[static_cast<size_t>(j)]);
    }
  });
}

void CpuBackend::balance_loss_impl(Tensor value, Tensor f, Tensor counts, Tensor prob_sums, int n_true,
                                   bool average_nulls, double tokens, double alpha_width) {
  const int64_t width = f.numel(), m = width - n_true;
  const double *c = counts.as<double>(), *ps = prob_sums.as<double>();
  double* fp = f.as<double>();
  for (int64_t i = 0; i < width; ++i) fp[i] = i < n_true ? c[i] / tokens : 0.0;
  if (average_nulls && m > 0) {
    double mean = 0;
    for (int64_t j = n_true; j < width; ++j) mean += c[j] / tokens / static_cast<double>(m);
    for (int64_t j = n_true; j < width; ++j) fp[j] = mean;
  }
  double dot = 0;
  for (int64_t i = 0; i < width; ++i) dot += fp[i] * ps[i] / tokens;
  value.as<double>()[0] = alpha_width * dot;
}

void CpuBackend::selection_bias_update_impl(Tensor bias, Tensor load, double rate) {
  const int64_t n = bias.numel();
  const double* l = load.as<double>();
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += l[i] / static_cast<double>(n);
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    T* b = bias.as<T>();
    for (int64_t i = 0; i < n; ++i) {
      double x = static_cast<double>(b[i]);
      if (l[i] > mean) x -= rate;
      if (l[i] < mean) x += rate;
      b[i] = static_cast<T>(x);
    }
  });
}

}  // namespace am
