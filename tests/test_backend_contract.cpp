// The op contract of core/backend.h: every op's arguments are checked once, in Backend, before a
// backend's `_impl` runs; errors name the op, the argument, its shape and the expected one; the
// float-dtype rule is Backend::check_float. (The CUDA backend goes through the same checks: the
// parity tests in tests/cuda/ call its ops the same way.)
#include "test_cpu_util.h"

using namespace am;
using namespace am::test;

TEST_CASE("contract: a float argument of another dtype is refused by check_float, naming it",
          "[cpu]") {
  CpuBackend be(DType::F64, 1);
  Arena ar(be);
  Tensor x = ar.f({2, 3}), out = ar.f({2, 3}), rstd = ar.f({2});
  Tensor w32 = ar.make(DType::F32, {3});
  CHECK_THROWS_WITH(be.rmsnorm_forward(out, rstd, x, w32, 1e-5),
                    Catch::Contains("rmsnorm_forward: w (3) has dtype F32, expected F64"));
  CHECK_THROWS_WITH(be.check_float("some_op", "t", w32),
                    Catch::Contains("some_op: t (3) has dtype F32, expected F64"));
  CHECK_NOTHROW(be.check_float("some_op", "x", x));
  // Index tensors must be I32.
  CHECK_THROWS_WITH(be.embedding_forward(out, ar.f({2}), ar.f({5, 3})),
                    Catch::Contains("embedding_forward: tokens (2) has dtype F64, expected I32"));
}

TEST_CASE("contract: shape and scalar checks name the op, the argument and the expected shape",
          "[cpu]") {
  CpuBackend be(DType::F32, 1);
  Arena ar(be);
  Tensor a = ar.f({4, 6}), b = ar.f({4, 5});
  CHECK_THROWS_WITH(be.add(a, a, b),
                    Catch::Contains("add: b has shape (4, 5) (20 elements), expected 24"));
  CHECK_THROWS_WITH(be.matmul(a, a, false, b, false, 1.0, 0.0),
                    Catch::Contains("matmul: c (4, 6) = op(a (4, 6)) op(b (4, 5)) does not fit"));
  Tensor slots = ar.i32({4, 2}), gates = ar.f({4, 2});
  CHECK_THROWS_WITH(be.topk_select(ar.i32({4, 7}), ar.f({4, 7}), a, a, 7, 6),
                    Catch::Contains("top-k with k = 7 of 6"));
  CHECK_THROWS_WITH(be.topk_select(slots, gates, a, a, 3, 6),
                    Catch::Contains("topk_select: slot_expert has shape (4, 2), expected (4, 3)"));
  CHECK_NOTHROW(be.topk_select(slots, gates, a, a, 2, 6));
  AttnShape s{1, 4, 2, 2, 3};  // odd head_dim
  Tensor qkv = ar.f({4, s.qkv_dim()});
  CHECK_THROWS_WITH(be.rope_forward(qkv, s, 1e4),
                    Catch::Contains("rope_forward: RoPE needs an even head_dim, got 3"));
  AdamWStep st;
  st.step = 0;
  CHECK_THROWS_WITH(be.adamw_update(a, a, a, a, st), Catch::Contains("AdamW step must be >= 1"));
  CHECK_THROWS_WITH(be.cross_entropy_forward(ar.f({0}), ar.f({4, 0}), ar.i32({0})),
                    Catch::Contains("cross-entropy over an empty vocabulary"));
}
