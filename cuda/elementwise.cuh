// Element-wise kernels: add, axpy, scale, sum of squares, AdamW and its update flag (fp32 tensors),
// and the fp32 -> bf16 cast of mixed precision.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace am::cuda {

void add_f32(float* out, const float* a, const float* b, int64_t n);
void axpy_f32(float* y, const float* x, float alpha, int64_t n);
void scale_f32(float* x, float s, int64_t n);
// Sum of squares in double; deterministic (fixed grid, fixed-order final reduction).
double sum_squares_f32(const float* x, int64_t n, double* scratch /* device, >= kSumSquaresBlocks */);
inline constexpr int kSumSquaresBlocks = 256;
// The kSumSquaresBlocks partial sums of sum_squares_f32 into scratch (device), no host read.
void sum_squares_partials_f32(const float* x, int64_t n, double* scratch);
// AdamW; a non-finite value written sets *flag (device) to tag when it is 0 (Backend::adamw_update).
void adamw_f32(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
               float weight_decay, float grad_scale, float bc1, float bc2, int* flag, int tag);
// *dst = *flag as a float (both device; one thread, no host synchronisation).
void flag_to_f32(float* dst, const int* flag);

// out[i] = x[i] rounded to bf16 (nearest even, like am::f32_to_bf16_bits).
void cast_f32_to_bf16(__nv_bfloat16* out, const float* x, int64_t n);
// out[i] = x[i] as a float (exact).
void cast_bf16_to_f32(float* out, const __nv_bfloat16* x, int64_t n);

}  // namespace am::cuda
