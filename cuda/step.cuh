// Kernels of a training step that reads the device once (Backend, "a training step that reads the device once"): the
// loss accumulator, the gradient norm's accumulator and the multi-tensor AdamW with its clip factor read from device
// memory (fp32 tensors, F64 accumulators).
#pragma once

#include "core/backend.h"

#include <cstdint>

namespace am::cuda {

// acc[0] += (sum losses / denom) / divisor: one block, a fixed-shape tree in double (deterministic).
void loss_sum_accumulate_f32(double* acc, const float* losses, int64_t n, double denom, double divisor);
// acc[0] += sum x^2, exactly as sum_squares_f32 computes it (the same partials, summed in block
// order on the device instead of the host).
void sum_squares_accumulate_f32(double* acc, const float* x, int64_t n, double* scratch /* >= kSumSquaresBlocks */);
// Backend::sum_squares_spans: each row's kSumSquaresBlocks partials as sum_squares_f32 makes them
// (one launch for all rows), then one thread adds them row by row, in order (a second launch).
void sum_squares_spans_f32(double* acc, const float* x, const SumSquaresSpan* rows, int64_t n_rows,
                           double* scratch /* >= kSumSquaresBlocks * n_rows */);
// Backend::adamw_update_multi on fp32 buffers: rows (device, n_rows), norm_sq (device, 2).
// call_min (device int): kNoTag between calls; flag: the backend's update flag.
inline constexpr int kNoTag = 0x7f7f7f7f;  // what cudaMemset(.., 0x7f, ..) writes
void adamw_multi_f32(float* p, const float* g, float* m, float* v, const AdamWChunk* rows, int64_t n_rows,
                     const double* norm_sq, double grad_clip, const AdamWStep& s, int* call_min, int* flag);

}  // namespace am::cuda
