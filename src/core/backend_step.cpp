// The op contract of core/backend.h, the ops of a training step that reads the device once: the
// loss and gradient-norm accumulators and the multi-tensor AdamW. Each checks its arguments here,
// then calls its `_impl`. The contents of the chunk and span tables are device data: the CPU
// backend checks their rows too, the GPU cannot without a read-back.
#include "core/backend.h"

#include "core/op_checks.h"

#include <utility>

namespace am {

using namespace op_checks;

namespace {

void check_table(const char* op, const char* name, const Tensor& t, int64_t words) {
  check_dtype(op, name, t, DType::I32);
  AM_CHECK(t.ndim == 2 && t.dim(1) == words, "{}: {} has shape {}, expected (n, {})", op, name, t.shape_str(), words);
}

}  // namespace

void Backend::loss_sum_accumulate(Tensor acc, Tensor losses, double denom, double divisor) {
  const char* op = "loss_sum_accumulate";
  check_dtype(op, "acc", acc, DType::F64);
  check_count(op, "acc", acc, 1);
  check_float(op, "losses", losses);
  AM_CHECK(denom > 0 && divisor > 0, "{}: denom {} and divisor {} must be > 0", op, denom, divisor);
  with_f32("loss_sum_accumulate", {rw(&acc), &losses}, [&] { loss_sum_accumulate_impl(acc, losses, denom, divisor); });
}

void Backend::sum_squares_accumulate(Tensor acc, Tensor x) {
  const char* op = "sum_squares_accumulate";
  check_dtype(op, "acc", acc, DType::F64);
  check_count(op, "acc", acc, 1);
  check_float(op, "x", x);
  with_f32("sum_squares_accumulate", {rw(&acc), &x}, [&] { sum_squares_accumulate_impl(acc, x); });
}

void Backend::sum_squares_spans(Tensor acc, Tensor x, Tensor spans) {
  const char* op = "sum_squares_spans";
  check_dtype(op, "acc", acc, DType::F64);
  check_float(op, "x", x);
  check_table(op, "spans", spans, kSumSquaresSpanWords);
  with_f32("sum_squares_spans", {rw(&acc), &x, &spans}, [&] { sum_squares_spans_impl(acc, x, spans); });
}

void Backend::adamw_update_multi(Tensor params, Tensor grads, Tensor m, Tensor v, Tensor chunks, Tensor norm_sq,
                                 double grad_clip, const AdamWStep& s) {
  const char* op = "adamw_update_multi";
  for (const auto& [name, t] :
       {std::pair<const char*, const Tensor&>{"params", params}, {"grads", grads}, {"m", m}, {"v", v}}) {
    check_master(op, name, t);
  }
  check_count(op, "grads", grads, params.numel());
  check_count(op, "v", v, m.numel());
  check_dtype(op, "norm_sq", norm_sq, DType::F64);
  check_count(op, "norm_sq", norm_sq, 2);
  check_table(op, "chunks", chunks, kAdamWChunkWords);
  AM_CHECK(s.step >= 1, "AdamW step must be >= 1 (1-based), got {}", s.step);
  adamw_update_multi_impl(params, grads, m, v, chunks, norm_sq, grad_clip, s);
}

}  // namespace am
