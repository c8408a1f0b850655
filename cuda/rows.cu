// rows.cu: softmax cross-entropy, the row-softmax helpers (softmax, its backward, log-sum-exp,
// axpy_rows, column sums, add_to_rows), entropy, and the column writers, on the default stream.
// fp32 tensors; under bf16 storage cross-entropy's logits and gradient may be BF16 (the kernel is
// templated on their storage types, bf16_io.cuh; BF16 losses fall back to fp32 copies, core/f32_copies.h). The CPU
// kernels in src/cpu/ops_{cross_entropy,softmax,entropy,norms}.cpp are the spec: the same formulas in the same
// precision (float exp summed in double for cross-entropy, double exp for the softmax helpers, as the CPU does).
//
// Determinism: no floating-point atomics. A row is reduced by one block (CUB block reduction of a
// fixed size chosen from the row length only); column sums go by fixed row chunks combined in
// order (row_reduce.cuh); the entropy sum is per-block partials of a fixed grid summed on the host
// in block order.
#include "bf16_io.cuh"
#include "check.cuh"
#include "core/f32_copies.h"
#include "core/op_checks.h"
#include "launch.cuh"
#include "ops.cuh"
#include "row_reduce.cuh"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace am::cuda {

namespace {

// ---- cross-entropy ----

// One block of B threads per row i of logits (N,V). Row max (exact), sum of expf(x - max) in
// double; kLoss: loss = max + log(sum) - x[y]. kGrad: then row i of `grad` (which may be the logits
// themselves) becomes grad_scale * (softmax - onehot(y)), the exps recomputed (the same values).
// y < 0: loss 0 and a zero gradient row. Both: the fused classifier, one pass over the logits.
// TL, TG: the storage types of logits and grad (the same when grad is the logits).
template <int B, bool kLoss, bool kGrad, typename TL, typename TG>
__global__ void cross_entropy_kernel(float* losses, const TL* logits, TG* grad, const int32_t* targets, int64_t N,
                                     int64_t V, double grad_scale) {
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const TL* x = logits + i * V;
    TG* g = grad + i * V;          // each thread writes only the columns it read
    const int32_t y = targets[i];  // the same for the whole block
    if (y < 0 || y >= V) {         // ignored; >= V: a guard (checked on the host), the loss turns NaN
      if (kLoss && threadIdx.x == 0) losses[i] = y < 0 ? 0.0f : NAN;
      if (kGrad) {
        for (int64_t j = threadIdx.x; j < V; j += B) g[j] = from_float<TG>(0.0f);
      }
      continue;
    }
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < V; j += B) mx = MaxOp{}(mx, to_float(x[j]));
    mx = block_allreduce<B>(mx, MaxOp{});
    double sum = 0;
    for (int64_t j = threadIdx.x; j < V; j += B) sum += double(expf(to_float(x[j]) - mx));
    const float xy = to_float(x[y]);  // read before the barrier of the reduction: no thread has written yet
    sum = block_allreduce<B>(sum, SumOp{});
    if (kLoss && threadIdx.x == 0) losses[i] = static_cast<float>(double(mx) + log(sum) - double(xy));
    if (kGrad) {
      const double k = grad_scale / sum;
      for (int64_t j = threadIdx.x; j < V; j += B) {
        const double e = expf(to_float(x[j]) - mx);
        g[j] = from_float<TG>(static_cast<float>(j == y ? grad_scale * (e / sum - 1.0) : e * k));
      }
    }
  }
}

// losses may be empty without kLoss; grad without kGrad. Native bf16: logits and grad F32 or BF16
// (losses F32).
template <bool kLoss, bool kGrad>
void cross_entropy(Backend&, Tensor losses, Tensor logits, Tensor grad, Tensor targets, double grad_scale) {
  const int64_t N = row_count(logits), V = last_dim(logits);
  // Negative targets are ignored rows. Targets >= V are checked on the host before the upload
  // (Transformer::forward): here such a row reads nothing, gets a NaN loss and a zero gradient.
  if (N == 0) return;
  with_row_block(V, [&](auto block) {
    constexpr int B = decltype(block)::value;
    with_storage(logits.dtype, [&](auto tl) {
      with_storage(kGrad ? grad.dtype : DType::F32, [&](auto tg) {
        using TL = decltype(tl);
        using TG = decltype(tg);
        launch<cross_entropy_kernel<B, kLoss, kGrad, TL, TG>>(row_grid(N), B, 0, compute_stream(), losses.as<float>(),
                                                              data_as<TL>(logits), data_as<TG>(grad),
                                                              targets.as<int32_t>(), N, V, grad_scale);
      });
    });
  });
}

// ---- row softmax helpers: one block of B threads per row of (N,n), in double ----

template <int B>
__device__ __forceinline__ double row_max(const float* zr, int64_t n) {
  double mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += B) mx = MaxOp{}(mx, double(zr[j]));
  return block_allreduce<B>(mx, MaxOp{});
}

template <int B>
__device__ __forceinline__ double row_sum_exp(const float* zr, int64_t n, double mx) {
  double sum = 0;
  for (int64_t j = threadIdx.x; j < n; j += B) sum += exp(double(zr[j]) - mx);
  return block_allreduce<B>(sum, SumOp{});
}

// p = softmax(z) by rows. p may alias z: every thread reads and writes only its own columns.
template <int B>
__global__ void softmax_rows_kernel(float* p, const float* z, int64_t N, int64_t n) {
  for (int64_t t = blockIdx.x; t < N; t += gridDim.x) {
    const float* zr = z + t * n;
    const double mx = row_max<B>(zr, n);
    const double inv = 1.0 / row_sum_exp<B>(zr, n, mx);
    float* pr = p + t * n;
    for (int64_t j = threadIdx.x; j < n; j += B) pr[j] = static_cast<float>(exp(double(zr[j]) - mx) * inv);
  }
}

// dz += p (dp - <dp, p>) by rows.
template <int B>
__global__ void softmax_rows_backward_kernel(float* dz, const float* dp, const float* p, int64_t N, int64_t n) {
  for (int64_t t = blockIdx.x; t < N; t += gridDim.x) {
    const float* g = dp + t * n;
    const float* pr = p + t * n;
    double c = 0;
    for (int64_t j = threadIdx.x; j < n; j += B) c += double(g[j]) * double(pr[j]);
    c = block_allreduce<B>(c, SumOp{});
    float* o = dz + t * n;
    for (int64_t j = threadIdx.x; j < n; j += B) o[j] += static_cast<float>(double(pr[j]) * (double(g[j]) - c));
  }
}

template <int B>
__global__ void logsumexp_rows_kernel(float* out, const float* z, int64_t N, int64_t n) {
  for (int64_t t = blockIdx.x; t < N; t += gridDim.x) {
    const float* zr = z + t * n;
    const double mx = row_max<B>(zr, n);
    const double sum = row_sum_exp<B>(zr, n, mx);
    if (threadIdx.x == 0) out[t] = static_cast<float>(mx + log(sum));
  }
}

__global__ void fill_kernel(float* x, float v, int64_t n) { AM_GRID_STRIDE(i, n) x[i] = v; }

// y (N,n) += alpha s[t] x, element-wise.
__global__ void axpy_rows_kernel(float* y, const float* x, const float* s, double alpha, int64_t N, int64_t n) {
  AM_GRID_STRIDE(i, N * n) {
    const double a = alpha * double(s[i / n]);
    y[i] += static_cast<float>(a * double(x[i]));
  }
}

// x (N,n) += v (n, double) in every row.
__global__ void add_to_rows_kernel(float* x, const double* v, int64_t N, int64_t n) {
  AM_GRID_STRIDE(i, N * n) x[i] = static_cast<float>(double(x[i]) + v[i % n]);
}

// ---- entropy ----

constexpr int kEntropyBlocks = 256;

// partial[block] = sum of -p log p over the block's grid-stride share, reduced in a fixed order.
__global__ void entropy_partial_kernel(const float* p, int64_t n, double* partial) {
  double acc = 0;
  AM_GRID_STRIDE(i, n) {
    const double v = p[i];
    acc += v != 0 ? -v * log(v) : 0.0;
  }
  acc = block_allreduce<kThreads>(acc, SumOp{});
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void entropy_backward_kernel(float* dp, const float* p, int64_t n, double scale) {
  AM_GRID_STRIDE(i, n) {
    const double v = p[i];
    if (v > 0) dp[i] = static_cast<float>(double(dp[i]) - scale * (log(v) + 1.0));
  }
}

// ---- column writers ----

// x (N,C) columns [col, col + m) = v (m) in every row.
__global__ void broadcast_columns_kernel(float* x, const float* v, int64_t N, int64_t C, int64_t m, int64_t col) {
  AM_GRID_STRIDE(i, N * m) x[(i / m) * C + col + i % m] = v[i % m];
}

// dst (N,C) columns [col, col + w) = src (N,w).
__global__ void copy_columns_kernel(float* dst, const float* src, int64_t N, int64_t C, int64_t w, int64_t col) {
  AM_GRID_STRIDE(i, N * w) dst[(i / w) * C + col + i % w] = src[i];
}

}  // namespace

// ---- cross-entropy ----

void cross_entropy_forward(Backend& be, Tensor losses, Tensor logits, Tensor targets) {
  if (losses.dtype != DType::F32) {  // BF16 losses: through fp32 copies
    F32Copies f32(be, {Backend::rw(&losses), &logits});
    cross_entropy_forward(be, losses, logits, targets);
    f32.narrow();
    return;
  }
  cross_entropy<true, false>(be, losses, logits, Tensor(), targets, 0.0);
}

// The fused classifier: the override of Backend's composite (forward, then backward). BF16 logits
// are overwritten by the gradient rounded to bf16, as the spec's composite does.
void cross_entropy_forward_backward(Backend& be, Tensor losses, Tensor logits, Tensor targets, double grad_scale) {
  if (losses.dtype != DType::F32) {  // BF16 losses: through fp32 copies
    F32Copies f32(be, {Backend::rw(&losses), Backend::rw(&logits)});
    cross_entropy_forward_backward(be, losses, logits, targets, grad_scale);
    f32.narrow();
    return;
  }
  cross_entropy<true, true>(be, losses, logits, logits, targets, grad_scale);
}

void cross_entropy_backward(Backend& be, Tensor dlogits, Tensor logits, Tensor targets, double grad_scale) {
  cross_entropy<false, true>(be, Tensor(), logits, dlogits, targets, grad_scale);
}

// ---- row softmax helpers ----

void softmax_rows(Backend&, Tensor p, Tensor z) {
  const int64_t N = row_count(z), n = last_dim(z);
  if (N == 0 || n == 0) return;
  with_row_block(n, [&](auto block) {
    constexpr int B = decltype(block)::value;
    launch<softmax_rows_kernel<B>>(row_grid(N), B, 0, compute_stream(), p.as<float>(), z.as<float>(), N, n);
  });
}

void softmax_rows_backward(Backend&, Tensor dz, Tensor dp, Tensor p) {
  const int64_t N = row_count(p), n = last_dim(p);
  if (N == 0 || n == 0) return;
  with_row_block(n, [&](auto block) {
    constexpr int B = decltype(block)::value;
    launch<softmax_rows_backward_kernel<B>>(row_grid(N), B, 0, compute_stream(), dz.as<float>(), dp.as<float>(),
                                            p.as<float>(), N, n);
  });
}

void logsumexp_rows(Backend&, Tensor out, Tensor z) {
  const int64_t N = row_count(z), n = last_dim(z);
  if (N == 0) return;
  if (n == 0) {  // an empty row: log(0) (unreachable while row_count of an (N, 0) matrix is 0)
    launch<fill_kernel>(blocks_for(N), kThreads, 0, compute_stream(), out.as<float>(), -INFINITY, N);
    return;
  }
  with_row_block(n, [&](auto block) {
    constexpr int B = decltype(block)::value;
    launch<logsumexp_rows_kernel<B>>(row_grid(N), B, 0, compute_stream(), out.as<float>(), z.as<float>(), N, n);
  });
}

void axpy_rows(Backend&, Tensor y, Tensor x, Tensor s, double alpha) {
  const int64_t N = row_count(y), n = last_dim(y);
  if (N * n == 0) return;
  launch<axpy_rows_kernel>(blocks_for(N * n), kThreads, 0, compute_stream(), y.as<float>(), x.as<float>(),
                           s.as<float>(), alpha, N, n);
}

std::vector<double> column_sums(Backend& be, Tensor x) {
  const int64_t N = row_count(x), n = last_dim(x);
  std::vector<double> out(static_cast<size_t>(n), 0.0);
  if (n == 0) return out;
  Buffer sums = be.alloc(sizeof(double) * static_cast<size_t>(n));
  column_reduce(be, N, n, F32Column{x.as<float>(), n}, StoreF64{static_cast<double*>(sums.get())});
  copy_to_host(out.data(), sums.get(), sizeof(double) * static_cast<size_t>(n));
  return out;
}

void add_to_rows(Backend& be, Tensor x, const std::vector<double>& v) {
  const int64_t n = static_cast<int64_t>(v.size()), N = row_count(x);
  if (N * n == 0) return;
  Buffer dv = be.alloc(sizeof(double) * v.size());
  copy_from_host(dv.get(), v.data(), sizeof(double) * v.size());
  launch<add_to_rows_kernel>(blocks_for(N * n), kThreads, 0, compute_stream(), x.as<float>(),
                             static_cast<const double*>(dv.get()), N, n);
}

// ---- entropy ----

double entropy_sum(Backend& be, Tensor p) {
  const int64_t n = p.numel();
  if (n == 0) return 0.0;
  Buffer scratch = be.alloc(sizeof(double) * kEntropyBlocks);
  launch<entropy_partial_kernel>(kEntropyBlocks, kThreads, 0, compute_stream(), p.as<float>(), n,
                                 static_cast<double*>(scratch.get()));
  std::vector<double> partial(kEntropyBlocks);
  copy_to_host(partial.data(), scratch.get(), sizeof(double) * kEntropyBlocks);
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

void entropy_backward(Backend&, Tensor dp, Tensor p, double scale) {
  const int64_t n = p.numel();
  if (n == 0) return;
  launch<entropy_backward_kernel>(blocks_for(n), kThreads, 0, compute_stream(), dp.as<float>(), p.as<float>(), n,
                                  scale);
}

// ---- column writers ----

void broadcast_columns(Backend&, Tensor x, Tensor v, int64_t col) {
  const int64_t N = row_count(x), C = last_dim(x), m = v.numel();
  if (N * m == 0) return;
  launch<broadcast_columns_kernel>(blocks_for(N * m), kThreads, 0, compute_stream(), x.as<float>(), v.as<float>(), N, C,
                                   m, col);
}

void copy_columns(Backend&, Tensor dst, Tensor src, int64_t col) {
  const int64_t N = row_count(dst), C = last_dim(dst), w = last_dim(src);
  if (N * w == 0) return;
  launch<copy_columns_kernel>(blocks_for(N * w), kThreads, 0, compute_stream(), dst.as<float>(), src.as<float>(), N, C,
                              w, col);
}

}  // namespace am::cuda
