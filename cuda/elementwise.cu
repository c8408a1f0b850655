#include "adamw.cuh"
#include "check.cuh"
#include "elementwise.cuh"
#include "launch.cuh"

#include <vector>

namespace am::cuda {
namespace {

__global__ void add_kernel(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = a[i] + b[i];
  }
}

__global__ void axpy_kernel(float* y, const float* x, float alpha, int64_t n) {
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    y[i] += alpha * x[i];
  }
}

__global__ void scale_kernel(float* x, float s, int64_t n) {
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    x[i] *= s;
  }
}

// Each block reduces a fixed strided subset in a fixed order; block results are summed on the host
// in block order, so the result does not depend on scheduling.
__global__ void sum_squares_kernel(const float* x, int64_t n, double* partial) {
  AM_SHARED(double, s, [kThreads]);
  double acc = 0;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    acc += double(x[i]) * double(x[i]);
  }
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

// A thread that wrote a non-finite value sets *flag to tag unless an earlier update set it.
__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                             float beta2, float eps, float wd, float gs, float bc1, float bc2, int* flag, int tag) {
  bool bad = false;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    bad = !adamw_element(p[i], g[i], m[i], v[i], lr, beta1, beta2, eps, wd, gs, bc1, bc2) || bad;
  }
  if (bad) atomicCAS(flag, 0, tag);
}

__global__ void flag_to_float_kernel(float* dst, const int* flag) { *dst = static_cast<float>(*flag); }

__global__ void cast_bf16_kernel(__nv_bfloat16* out, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = __float2bfloat16_rn(x[i]);
  }
}

__global__ void widen_bf16_kernel(float* out, const __nv_bfloat16* x, int64_t n) {
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = __bfloat162float(x[i]);
  }
}

}  // namespace

void add_f32(float* out, const float* a, const float* b, int64_t n) {
  if (n == 0) return;
  launch<add_kernel>(blocks_for(n), kThreads, 0, compute_stream(), out, a, b, n);
}

void axpy_f32(float* y, const float* x, float alpha, int64_t n) {
  if (n == 0) return;
  launch<axpy_kernel>(blocks_for(n), kThreads, 0, compute_stream(), y, x, alpha, n);
}

void scale_f32(float* x, float s, int64_t n) {
  if (n == 0) return;
  launch<scale_kernel>(blocks_for(n), kThreads, 0, compute_stream(), x, s, n);
}

void sum_squares_partials_f32(const float* x, int64_t n, double* scratch) {
  launch<sum_squares_kernel>(kSumSquaresBlocks, kThreads, 0, compute_stream(), x, n, scratch);
}

double sum_squares_f32(const float* x, int64_t n, double* scratch) {
  sum_squares_partials_f32(x, n, scratch);
  std::vector<double> partial(kSumSquaresBlocks);
  copy_to_host(partial.data(), scratch, sizeof(double) * kSumSquaresBlocks);
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

void adamw_f32(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
               float weight_decay, float grad_scale, float bc1, float bc2, int* flag, int tag) {
  if (n == 0) return;
  launch<adamw_kernel>(blocks_for(n), kThreads, 0, compute_stream(), p, g, m, v, n, lr, beta1, beta2, eps, weight_decay,
                       grad_scale, bc1, bc2, flag, tag);
}

void flag_to_f32(float* dst, const int* flag) { launch<flag_to_float_kernel>(1, 1, 0, compute_stream(), dst, flag); }

void cast_f32_to_bf16(__nv_bfloat16* out, const float* x, int64_t n) {
  if (n == 0) return;
  launch<cast_bf16_kernel>(blocks_for(n), kThreads, 0, compute_stream(), out, x, n);
}

void cast_bf16_to_f32(float* out, const __nv_bfloat16* x, int64_t n) {
  if (n == 0) return;
  launch<widen_bf16_kernel>(blocks_for(n), kThreads, 0, compute_stream(), out, x, n);
}

}  // namespace am::cuda
