// The op contract of core/backend.h: every op's arguments are checked once, in Backend, before a
// backend's `_impl` runs; errors name the op, the argument, its shape and the expected one; the
// float-dtype rule is Backend::check_float. (The CUDA backend goes through the same checks: the
// parity tests in tests/cuda/ call its ops the same way.)
#include "test_cpu_util.h"

using namespace am;
using namespace am::test;

TEST_CASE("contract: a float argument of another dtype is refused by check_float, naming it", "[cpu]") {
  CpuBackend be(DType::F64, 1);
  Arena ar(be);
  Tensor x = ar.f({2, 3}), out = ar.f({2, 3}), rstd = ar.f({2});
  Tensor w32 = ar.make(DType::F32, {3});
  CHECK_THROWS_WITH(be.rmsnorm_forward(out, rstd, x, w32, 1e-5),
                    Catch::Contains("rmsnorm_forward: w (3) has dtype F32, expected F64"));
  CHECK_THROWS_WITH(be.check_float("some_op", "t", w32), Catch::Contains("some_op: t (3) has dtype F32, expected F64"));
  CHECK_NOTHROW(be.check_float("some_op", "x", x));
  // Index tensors must be I32.
  CHECK_THROWS_WITH(be.embedding_forward(out, ar.f({2}), ar.f({5, 3})),
                    Catch::Contains("embedding_forward: tokens (2) has dtype F64, expected I32"));
}

TEST_CASE("contract: shape and scalar checks name the op, the argument and the expected shape", "[cpu]") {
  CpuBackend be(DType::F32, 1);
  Arena ar(be);
  Tensor a = ar.f({4, 6}), b = ar.f({4, 5});
  CHECK_THROWS_WITH(be.add(a, a, b), Catch::Contains("add: b has shape (4, 5) (20 elements), expected 24"));
  CHECK_THROWS_WITH(be.matmul(a, a, false, b, false, 1.0, 0.0),
                    Catch::Contains("matmul: c (4, 6) = op(a (4, 6)) op(b (4, 5)) does not fit"));
  Tensor slots = ar.i32({4, 2}), gates = ar.f({4, 2});
  CHECK_THROWS_WITH(be.topk_select(ar.i32({4, 7}), ar.f({4, 7}), a, a, 7, 6), Catch::Contains("top-k with k = 7 of 6"));
  CHECK_THROWS_WITH(be.topk_select(slots, gates, a, a, 3, 6),
                    Catch::Contains("topk_select: slot_expert has shape (4, 2), expected (4, 3)"));
  CHECK_NOTHROW(be.topk_select(slots, gates, a, a, 2, 6));
  AttnShape s{1, 4, 2, 2, 3};  // odd head_dim
  Tensor qkv = ar.f({4, s.qkv_dim()});
  CHECK_THROWS_WITH(be.rope_forward(qkv, s, 1e4), Catch::Contains("rope_forward: RoPE needs an even head_dim, got 3"));
  AdamWStep st;
  st.step = 0;
  CHECK_THROWS_WITH(be.adamw_update(a, a, a, a, st), Catch::Contains("AdamW step must be >= 1"));
  CHECK_THROWS_WITH(be.cross_entropy_forward(ar.f({0}), ar.f({4, 0}), ar.i32({0})),
                    Catch::Contains("cross-entropy over an empty vocabulary"));
}

// The ops of the device-side step and of the MoE layer's device statistics follow the same
// contract: Backend checks them (core/backend_step.cpp, core/backend_moe_stats.cpp).
TEST_CASE("contract: the step's accumulators and the MoE statistics ops are checked in Backend", "[cpu]") {
  CpuBackend be(DType::F32, 1);
  Arena ar(be);
  Tensor x = ar.f({4, 3});
  Tensor acc64 = ar.make(DType::F64, {1}), acc32 = ar.f({1}), two64 = ar.make(DType::F64, {2});
  CHECK_THROWS_WITH(be.loss_sum_accumulate(acc32, ar.f({4}), 1.0, 1.0),
                    Catch::Contains("loss_sum_accumulate: acc (1) has dtype F32, expected F64"));
  CHECK_THROWS_WITH(be.loss_sum_accumulate(acc64, ar.f({4}), 0.0, 1.0),
                    Catch::Contains("loss_sum_accumulate: denom 0 and divisor 1 must be > 0"));
  CHECK_THROWS_WITH(be.sum_squares_accumulate(two64, x),
                    Catch::Contains("sum_squares_accumulate: acc has shape (2) (2 elements), expected 1"));
  CHECK_THROWS_WITH(be.sum_squares_spans(two64, x, ar.i32({1, 1})),
                    Catch::Contains("sum_squares_spans: spans has shape (1, 1), expected (n, "));
  AdamWStep st;
  CHECK_THROWS_WITH(be.adamw_update_multi(x, x, x, x, ar.i32({1, 2}), two64, 1.0, st),
                    Catch::Contains("adamw_update_multi: chunks has shape (1, 2), expected (n, "));
  CHECK_THROWS_WITH(be.column_sums_to(ar.make(DType::F64, {2}), x),
                    Catch::Contains("column_sums_to: out has shape (2) (2 elements), expected 3"));
  CHECK_THROWS_WITH(be.slot_counts(ar.make(DType::F64, {4}), ar.i32({4, 2}), 4, 2),
                    Catch::Contains("slot_counts: counts has shape (4) (4 elements), expected 5"));
  CHECK_THROWS_WITH(be.add_vector_to_rows(x, ar.f({4}), 1.0),
                    Catch::Contains("add_vector_to_rows: v has 4 elements, x only 3 columns"));
  CHECK_THROWS_WITH(be.selection_bias_update(ar.make(DType::F64, {3}), ar.make(DType::F64, {3}), 0.1),
                    Catch::Contains("selection_bias_update: bias (3) has dtype F64, expected F32"));
  CHECK_THROWS_WITH(be.balance_loss(ar.make(DType::F64, {1}), ar.make(DType::F64, {3}), ar.make(DType::F64, {3}),
                                    ar.make(DType::F64, {3}), 2, false, 0.0, 1.0),
                    Catch::Contains("balance_loss: tokens 0 must be > 0"));
}
