// The op contract of core/backend.h, the MoE layer's statistics and auxiliary-loss values on the
// device (F64 vectors in backend memory, read by the host only when a step logs): each op checks
// its arguments here, once for every backend, then calls its `_impl`.
#include "core/backend.h"

#include "core/op_checks.h"

namespace am {

using namespace op_checks;

namespace {

void f64_numel(const char* op, const char* name, const Tensor& t, int64_t n) {
  check_dtype(op, name, t, DType::F64);
  check_count(op, name, t, n);
}

}  // namespace

void Backend::column_sums_to(Tensor out, Tensor x) {
  const int64_t N = row_count(x), n = last_dim(x);
  float_matrix(*this, "column_sums_to", "x", x, N, n);
  f64_numel("column_sums_to", "out", out, n);
  with_f32("column_sums_to", {wr(&out), &x}, [&] { column_sums_to_impl(out, x); });
}

void Backend::entropy_sum_to(Tensor out, Tensor p, double coef, double div) {
  check_float("entropy_sum_to", "p", p);
  f64_numel("entropy_sum_to", "out", out, 1);
  with_f32("entropy_sum_to", {wr(&out), &p}, [&] { entropy_sum_to_impl(out, p, coef, div); });
}

void Backend::sum_squares_to(Tensor out, Tensor x, double coef, double div) {
  check_float("sum_squares_to", "x", x);
  f64_numel("sum_squares_to", "out", out, 1);
  with_f32("sum_squares_to", {wr(&out), &x}, [&] { sum_squares_to_impl(out, x, coef, div); });
}

void Backend::slot_counts(Tensor counts, Tensor slot_expert, int n_total, int n_true) {
  index_matrix("slot_counts", "slot_expert", slot_expert, row_count(slot_expert), last_dim(slot_expert));
  f64_numel("slot_counts", "counts", counts, int64_t(n_total) + 1);
  AM_CHECK(n_true >= 0 && n_true <= n_total, "slot_counts: {} true ids of {}", n_true, n_total);
  with_f32("slot_counts", {&counts, &slot_expert}, [&] { slot_counts_impl(counts, slot_expert, n_total, n_true); });
}

void Backend::axpy_f64(Tensor y, Tensor x, double alpha) {
  check_dtype("axpy_f64", "y", y, DType::F64);
  f64_numel("axpy_f64", "x", x, y.numel());
  with_f32("axpy_f64", {rw(&y), &x}, [&] { axpy_f64_impl(y, x, alpha); });
}

void Backend::sum_to(Tensor out, Tensor x) {
  check_dtype("sum_to", "x", x, DType::F64);
  AM_CHECK(out.numel() == 1 && (out.dtype == DType::F64 || out.dtype == dtype()),
           "sum_to: out {} of dtype {}, expected one F64 or {} element", out.shape_str(), dtype_name(out.dtype),
           dtype_name(dtype()));
  with_f32("sum_to", {wr(&out), &x}, [&] { sum_to_impl(out, x); });
}

void Backend::add_vector_to_rows(Tensor x, Tensor v, double alpha) {
  const int64_t N = row_count(x), C = last_dim(x), n = v.numel();
  float_matrix(*this, "add_vector_to_rows", "x", x, N, C);
  AM_CHECK(v.dtype == DType::F64 || v.dtype == dtype(), "add_vector_to_rows: v of dtype {}, expected F64 or {}",
           dtype_name(v.dtype), dtype_name(dtype()));
  AM_CHECK(n <= C, "add_vector_to_rows: v has {} elements, x only {} columns", n, C);
  with_f32("add_vector_to_rows", {rw(&x), &v}, [&] { add_vector_to_rows_impl(x, v, alpha); });
}

void Backend::balance_loss(Tensor value, Tensor f, Tensor counts, Tensor prob_sums, int n_true, bool average_nulls,
                           double tokens, double alpha_width) {
  const char* op = "balance_loss";
  const int64_t width = f.numel();
  f64_numel(op, "value", value, 1);
  check_dtype(op, "f", f, DType::F64);
  f64_numel(op, "prob_sums", prob_sums, width);
  check_dtype(op, "counts", counts, DType::F64);
  AM_CHECK(counts.numel() >= width && n_true >= 0 && width >= n_true, "{}: {} counts, {} columns, {} true", op,
           counts.numel(), width, n_true);
  AM_CHECK(tokens > 0, "{}: tokens {} must be > 0", op, tokens);
  with_f32("balance_loss", {wr(&value), wr(&f), &counts, &prob_sums},
           [&] { balance_loss_impl(value, f, counts, prob_sums, n_true, average_nulls, tokens, alpha_width); });
}

void Backend::selection_bias_update(Tensor bias, Tensor load, double rate) {
  check_master("selection_bias_update", "bias", bias);
  f64_numel("selection_bias_update", "load", load, bias.numel());
  with_f32("selection_bias_update", {rw(&bias), &load}, [&] { selection_bias_update_impl(bias, load, rate); });
}

}  // namespace am
