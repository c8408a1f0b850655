// moe_stats.cu: the MoE layer's statistics and auxiliary-loss values on the device (the Backend
// ops of "the MoE layer on the device", spec in src/cpu/cpu_backend_moe_stats.cpp): F64 vectors written and
// accumulated in device memory, so that a MoE forward reads nothing back but route_build's offsets.
//
// Determinism: no floating-point atomics. Column sums go through column_reduce (fixed row chunks,
// row_reduce.cuh); the entropy and sum-of-squares totals are per-block partials of a fixed grid
// summed by one thread in block order; slot counts are integer atomics on a shared histogram
// (order-independent); the scalar formulas (balance loss, bias update, sum_to) run on one thread
// in the CPU's order.
#include "check.cuh"
#include "core/op_checks.h"
#include "launch.cuh"
#include "ops.cuh"
#include "row_reduce.cuh"

namespace am::cuda {

namespace {

constexpr int kPartialBlocks = 256;

// partial[block] = sum over the block's grid-stride share of -p log p (kEntropy) or x^2.
template <bool kEntropy>
__global__ void partial_sum_kernel(const float* x, int64_t n, double* partial) {
  double acc = 0;
  AM_GRID_STRIDE(i, n) {
    const double v = x[i];
    if (kEntropy) {
      acc += v != 0 ? -v * log(v) : 0.0;
    } else {
      acc += v * v;
    }
  }
  acc = block_allreduce<kThreads>(acc, SumOp{});
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// out[0] = (coef * sum of partial in order) / div; one thread.
__global__ void finish_sum_kernel(double* out, const double* partial, int n, double coef, double div) {
  double total = 0;
  for (int i = 0; i < n; ++i) total += partial[i];
  out[0] = coef * total / div;
}

// One block: a shared histogram of (n_total + 1) counters (the last: rows with no true id), then
// the counts as doubles. Ids outside [-1, n_total) are skipped (never out of bounds).
__global__ void slot_counts_kernel(double* counts, const int32_t* slot_expert, int64_t N, int kmax, int n_total,
                                   int n_true) {
  AM_DYNAMIC_SHARED(unsigned int, hist);
  for (int i = threadIdx.x; i <= n_total; i += blockDim.x) hist[i] = 0;
  __syncthreads();
  for (int64_t t = threadIdx.x; t < N; t += blockDim.x) {
    bool any_true = false;
    for (int j = 0; j < kmax; ++j) {
      const int32_t e = slot_expert[t * kmax + j];
      if (e < 0 || e >= n_total) continue;
      atomicAdd(&hist[e], 1u);
      any_true = any_true || e < n_true;
    }
    if (!any_true) atomicAdd(&hist[n_total], 1u);
  }
  __syncthreads();
  for (int i = threadIdx.x; i <= n_total; i += blockDim.x) counts[i] = double(hist[i]);
}

__global__ void axpy_f64_kernel(double* y, const double* x, double alpha, int64_t n) {
  AM_GRID_STRIDE(i, n) y[i] += alpha * x[i];
}

template <typename T>
__global__ void sum_to_kernel(T* out, const double* x, int64_t n) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += x[i];
  out[0] = static_cast<T>(total);
}

// x (N,C): x[t][j] = float(x + v[j] * alpha) for j < n.
template <typename V>
__global__ void add_vector_to_rows_kernel(float* x, const V* v, double alpha, int64_t N, int64_t C, int64_t n) {
  AM_GRID_STRIDE(i, N * n) {
    const int64_t t = i / n, j = i % n;
    const double w = double(v[j]) * alpha;
    x[t * C + j] = static_cast<float>(double(x[t * C + j]) + w);
  }
}

__global__ void balance_loss_kernel(double* value, double* f, const double* c, const double* ps, int width, int n_true,
                                    bool average_nulls, double tokens, double alpha_width) {
  const int m = width - n_true;
  for (int i = 0; i < width; ++i) f[i] = i < n_true ? c[i] / tokens : 0.0;
  if (average_nulls && m > 0) {
    double mean = 0;
    for (int j = n_true; j < width; ++j) mean += c[j] / tokens / double(m);
    for (int j = n_true; j < width; ++j) f[j] = mean;
  }
  double dot = 0;
  for (int i = 0; i < width; ++i) dot += f[i] * ps[i] / tokens;
  value[0] = alpha_width * dot;
}

__global__ void selection_bias_kernel(float* bias, const double* load, int n, double rate) {
  double mean = 0;
  for (int i = 0; i < n; ++i) mean += load[i] / double(n);
  for (int i = 0; i < n; ++i) {
    double x = bias[i];
    if (load[i] > mean) x -= rate;
    if (load[i] < mean) x += rate;
    bias[i] = static_cast<float>(x);
  }
}

// out (1) F64 = (coef * sum of kEntropy ? -x log x : x^2) / div.
template <bool kEntropy>
void scalar_sum_to(Backend& be, Tensor out, Tensor x, double coef, double div) {
  Buffer partial = be.alloc(sizeof(double) * kPartialBlocks);
  auto* part = static_cast<double*>(partial.get());
  launch<partial_sum_kernel<kEntropy>>(kPartialBlocks, kThreads, 0, compute_stream(), x.as<float>(), x.numel(), part);
  launch<finish_sum_kernel>(1, 1, 0, compute_stream(), out.as<double>(), static_cast<const double*>(part),
                            kPartialBlocks, coef, div);
}

}  // namespace

void column_sums_to(Backend& be, Tensor out, Tensor x) {
  const int64_t N = row_count(x), n = last_dim(x);
  column_reduce(be, N, n, F32Column{x.as<float>(), n}, StoreF64{out.as<double>()});
}

void entropy_sum_to(Backend& be, Tensor out, Tensor p, double coef, double div) {
  scalar_sum_to<true>(be, out, p, coef, div);
}

void sum_squares_to(Backend& be, Tensor out, Tensor x, double coef, double div) {
  scalar_sum_to<false>(be, out, x, coef, div);
}

void slot_counts(Backend&, Tensor counts, Tensor slot_expert, int n_total, int n_true) {
  const int64_t N = row_count(slot_expert), kmax = last_dim(slot_expert);
  const size_t smem = sizeof(unsigned int) * static_cast<size_t>(n_total + 1);
  launch<slot_counts_kernel>(1, kThreads, smem, compute_stream(), counts.as<double>(), slot_expert.as<int32_t>(), N,
                             static_cast<int>(kmax), n_total, n_true);
}

void axpy_f64(Backend&, Tensor y, Tensor x, double alpha) {
  if (y.numel() == 0) return;
  launch<axpy_f64_kernel>(blocks_for(y.numel()), kThreads, 0, compute_stream(), y.as<double>(), x.as<double>(), alpha,
                          y.numel());
}

void sum_to(Backend&, Tensor out, Tensor x) {
  if (out.dtype == DType::F64) {
    launch<sum_to_kernel<double>>(1, 1, 0, compute_stream(), out.as<double>(), x.as<double>(), x.numel());
  } else {
    launch<sum_to_kernel<float>>(1, 1, 0, compute_stream(), out.as<float>(), x.as<double>(), x.numel());
  }
}

void add_vector_to_rows(Backend&, Tensor x, Tensor v, double alpha) {
  const int64_t N = row_count(x), C = last_dim(x), n = v.numel();
  if (N * n == 0) return;
  if (v.dtype == DType::F64) {
    launch<add_vector_to_rows_kernel<double>>(blocks_for(N * n), kThreads, 0, compute_stream(), x.as<float>(),
                                              v.as<double>(), alpha, N, C, n);
  } else {
    launch<add_vector_to_rows_kernel<float>>(blocks_for(N * n), kThreads, 0, compute_stream(), x.as<float>(),
                                             v.as<float>(), alpha, N, C, n);
  }
}

void balance_loss(Backend&, Tensor value, Tensor f, Tensor counts, Tensor prob_sums, int n_true, bool average_nulls,
                  double tokens, double alpha_width) {
  const int64_t width = f.numel();
  launch<balance_loss_kernel>(1, 1, 0, compute_stream(), value.as<double>(), f.as<double>(), counts.as<double>(),
                              prob_sums.as<double>(), static_cast<int>(width), n_true, average_nulls, tokens,
                              alpha_width);
}

void selection_bias_update(Backend&, Tensor bias, Tensor load, double rate) {
  const int64_t n = bias.numel();
  if (n == 0) return;
  launch<selection_bias_kernel>(1, 1, 0, compute_stream(), bias.as<float>(), load.as<double>(), static_cast<int>(n),
                                rate);
}

}  // namespace am::cuda
