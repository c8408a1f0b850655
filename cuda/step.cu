#include "adamw.cuh"
#include "check.cuh"
#include "elementwise.cuh"
#include "launch.cuh"
#include "step.cuh"

#include <cmath>

namespace am::cuda {
namespace {

__global__ void loss_sum_kernel(double* acc, const float* losses, int64_t n, double denom, double divisor) {
  AM_SHARED(double, s, [kThreads]);
  double sum = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += double(losses[i]);
  s[threadIdx.x] = sum;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) acc[0] += s[0] / denom / divisor;
}

// One thread: the partials in block order, as sum_squares_f32 sums them on the host.
__global__ void add_partials_kernel(double* acc, const double* partial, int n) {
  double total = 0;
  for (int b = 0; b < n; ++b) total += partial[b];
  acc[0] += total;
}

// Block (b, r): the partial b of span r, over the same elements, in the same order, as block b of
// sum_squares_f32's kernel over that span alone.
__global__ void span_partials_kernel(const float* x, const SumSquaresSpan* rows, double* partial) {
  AM_SHARED(double, s, [kThreads]);
  const SumSquaresSpan row = rows[blockIdx.y];
  const float* xr = x + row.begin;
  double acc = 0;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < row.numel; i += int64_t(gridDim.x) * blockDim.x) {
    acc += double(xr[i]) * double(xr[i]);
  }
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[int64_t(blockIdx.y) * gridDim.x + blockIdx.x] = s[0];
}

// One thread: row by row, the row's partials in block order, added to its slot.
__global__ void add_span_partials_kernel(double* acc, const SumSquaresSpan* rows, int64_t n_rows, const double* partial,
                                         int blocks) {
  for (int64_t r = 0; r < n_rows; ++r) {
    double total = 0;
    for (int b = 0; b < blocks; ++b) total += partial[r * blocks + b];
    acc[rows[r].slot] += total;
  }
}

// A block per row (grid-stride over rows); the clip factor from norm_sq, as AdamW::update computed
// it on the host (std::min(1.0, q) == (q < 1.0 ? q : 1.0)). A thread that wrote a non-finite value
// lowers *call_min to its row's tag (an integer minimum: the result does not depend on the order).
__global__ void adamw_multi_kernel(float* p, const float* g, float* m, float* v, const AdamWChunk* rows, int64_t n_rows,
                                   const double* norm_sq, double clip, float lr, float beta1, float beta2, float eps,
                                   float wd, float bc1, float bc2, int* call_min) {
  const double norm = sqrt(norm_sq[0] + norm_sq[1]);
  const double q = clip / (norm + 1e-6);
  const float gs = static_cast<float>(clip > 0 ? (q < 1.0 ? q : 1.0) : 1.0);
  for (int64_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
    const AdamWChunk row = rows[r];
    const float rwd = row.decay ? wd : 0.0f;
    bool bad = false;
    for (int64_t k = threadIdx.x; k < row.numel; k += blockDim.x) {
      const int64_t i = row.param_at + k, j = row.state_at + k;
      bad = !adamw_element(p[i], g[i], m[j], v[j], lr, beta1, beta2, eps, rwd, gs, bc1, bc2) || bad;
    }
    if (bad) atomicMin(call_min, row.tag);
  }
}

// The call's smallest bad tag into the sticky flag (when it is 0), and call_min reset.
__global__ void adamw_multi_flag_kernel(int* flag, int* call_min) {
  if (*flag == 0 && *call_min != kNoTag) *flag = *call_min;
  *call_min = kNoTag;
}

}  // namespace

void loss_sum_accumulate_f32(double* acc, const float* losses, int64_t n, double denom, double divisor) {
  launch<loss_sum_kernel>(1, kThreads, 0, compute_stream(), acc, losses, n, denom, divisor);
}

void sum_squares_accumulate_f32(double* acc, const float* x, int64_t n, double* scratch) {
  sum_squares_partials_f32(x, n, scratch);
  launch<add_partials_kernel>(1, 1, 0, compute_stream(), acc, static_cast<const double*>(scratch), kSumSquaresBlocks);
}

void sum_squares_spans_f32(double* acc, const float* x, const SumSquaresSpan* rows, int64_t n_rows, double* scratch) {
  if (n_rows == 0) return;
  AM_CHECK(n_rows <= kMaxBlocks, "sum_squares_spans: {} rows (at most {})", n_rows, kMaxBlocks);
  launch<span_partials_kernel>(dim3(kSumSquaresBlocks, static_cast<unsigned>(n_rows)), kThreads, 0, compute_stream(), x,
                               rows, scratch);
  launch<add_span_partials_kernel>(1, 1, 0, compute_stream(), acc, rows, n_rows, static_cast<const double*>(scratch),
                                   kSumSquaresBlocks);
}

void adamw_multi_f32(float* p, const float* g, float* m, float* v, const AdamWChunk* rows, int64_t n_rows,
                     const double* norm_sq, double grad_clip, const AdamWStep& s, int* call_min, int* flag) {
  if (n_rows > 0) {
    // As adamw_update computes its scalars (cuda_backend.cu), so each row's bits match a per-tensor call.
    const float bc1 = static_cast<float>(1.0 - std::pow(s.beta1, double(s.step)));
    const float bc2 = static_cast<float>(1.0 - std::pow(s.beta2, double(s.step)));
    launch<adamw_multi_kernel>(row_grid(n_rows), kThreads, 0, compute_stream(), p, g, m, v, rows, n_rows, norm_sq,
                               grad_clip, static_cast<float>(s.lr), static_cast<float>(s.beta1),
                               static_cast<float>(s.beta2), static_cast<float>(s.eps),
                               static_cast<float>(s.weight_decay), bc1, bc2, call_min);
  }
  launch<adamw_multi_flag_kernel>(1, 1, 0, compute_stream(), flag, call_min);
}

}  // namespace am::cuda
