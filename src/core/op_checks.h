// The argument checks of the op contract (core/backend.h): dtypes and shapes of the tensors an op
// receives, used by Backend's op definitions (backend.cpp, backend_moe.cpp) and nowhere else. A
// mismatch is a bug in the caller, reported with AM_CHECK naming the op, the argument, its shape
// and the expected one. A tensor documented as (B, T, C) may come as any shape with the same last
// dimension and element count (e.g. (B*T, C)); so may (N, d) and friends. last_dim / row_count
// read such a tensor as a matrix (kernels use them too).
#pragma once

#include "core/backend.h"
#include "core/tensor.h"

namespace am {

inline int64_t last_dim(const Tensor& t) { return t.ndim == 0 ? 0 : t.dims[t.ndim - 1]; }
inline int64_t row_count(const Tensor& t) {
  const int64_t c = last_dim(t);
  return c == 0 ? 0 : t.numel() / c;
}

namespace op_checks {

inline void check_dtype(const char* op, const char* name, const Tensor& t, DType want) {
  AM_CHECK(t.dtype == want, "{}: {} {} has dtype {}, expected {}", op, name, t.shape_str(), dtype_name(t.dtype),
           dtype_name(want));
}

// t holds a (rows, cols) matrix: last dimension cols, rows * cols elements.
inline void check_rows_cols(const char* op, const char* name, const Tensor& t, int64_t rows, int64_t cols) {
  AM_CHECK(t.ndim >= 1 && last_dim(t) == cols && t.numel() == rows * cols, "{}: {} has shape {}, expected ({}, {})", op,
           name, t.shape_str(), rows, cols);
}

// t holds n elements (any shape).
inline void check_count(const char* op, const char* name, const Tensor& t, int64_t n) {
  AM_CHECK(t.ndim >= 1 && t.numel() == n, "{}: {} has shape {} ({} elements), expected {} elements", op, name,
           t.shape_str(), t.numel(), n);
}

// Float tensors: the dtype rule is Backend::check_float (one place), then the shape.
inline void float_matrix(const Backend& be, const char* op, const char* name, const Tensor& t, int64_t rows,
                         int64_t cols) {
  be.check_float(op, name, t);
  check_rows_cols(op, name, t, rows, cols);
}
inline void float_numel(const Backend& be, const char* op, const char* name, const Tensor& t, int64_t n) {
  be.check_float(op, name, t);
  check_count(op, name, t, n);
}

// Index tensors: I32.
inline void index_matrix(const char* op, const char* name, const Tensor& t, int64_t rows, int64_t cols) {
  check_dtype(op, name, t, DType::I32);
  check_rows_cols(op, name, t, rows, cols);
}
inline void index_numel(const char* op, const char* name, const Tensor& t, int64_t n) {
  check_dtype(op, name, t, DType::I32);
  check_count(op, name, t, n);
}

}  // namespace op_checks
}  // namespace am
