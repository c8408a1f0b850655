// Entry checks of the CPU backend: dtypes and shapes of the tensors an op receives. A mismatch is
// a bug in the caller, reported with AM_CHECK naming the op, the argument, its shape and the
// expected one. A tensor documented as (B, T, C) may come as any shape with the same last
// dimension and element count (e.g. (B*T, C)); so may (N, d) and friends.
#pragma once

#include "core/tensor.h"

#include <string>

namespace am::cpu {

inline int64_t last_dim(const Tensor& t) { return t.ndim == 0 ? 0 : t.dims[t.ndim - 1]; }
inline int64_t row_count(const Tensor& t) {
  const int64_t c = last_dim(t);
  return c == 0 ? 0 : t.numel() / c;
}

inline void check_dtype(const char* op, const char* name, const Tensor& t, DType want) {
  AM_CHECK(t.dtype == want, "{}: {} {} has dtype {}, expected {}", op, name, t.shape_str(),
           dtype_name(t.dtype), dtype_name(want));
}

// t holds a (rows, cols) matrix: last dimension cols, rows * cols elements.
inline void check_matrix(const char* op, const char* name, const Tensor& t, DType want,
                         int64_t rows, int64_t cols) {
  check_dtype(op, name, t, want);
  AM_CHECK(t.ndim >= 1 && last_dim(t) == cols && t.numel() == rows * cols,
           "{}: {} has shape {}, expected ({}, {})", op, name, t.shape_str(), rows, cols);
}

// t holds n elements (any shape).
inline void check_numel(const char* op, const char* name, const Tensor& t, DType want, int64_t n) {
  check_dtype(op, name, t, want);
  AM_CHECK(t.ndim >= 1 && t.numel() == n, "{}: {} has shape {} ({} elements), expected {} elements",
           op, name, t.shape_str(), t.numel(), n);
}

// Calls f(float{}) or f(double{}) for the compute dtype.
template <typename F>
void dispatch(DType dt, F&& f) {
  switch (dt) {
    case DType::F32:
      f(float{});
      return;
    case DType::F64:
      f(double{});
      return;
    default:
      AM_CHECK(false, "the CPU backend computes in F32 or F64, not {}", dtype_name(dt));
  }
}

}  // namespace am::cpu
