// CPU backend: embedding and RMSNorm, forward against direct formulas and gradients by finite
// differences.
#include "test_cpu_util.h"

#include <cmath>

using namespace am;
using namespace am::test;

TEST_CASE("cpu embedding: lookup, accumulated gradient with repeated tokens, bad ids", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(10);
  const int64_t V = 7, d = 5, N = 9;
  Tensor table = ar.randn({V, d}, rng);
  Tensor tokens = ar.i32({N}, {3, 0, 6, 3, 3, 1, 6, 2, 0});  // 4 and 5 unused, 3 three times
  Tensor out = ar.f({N, d}), R = ar.randn({N, d}, rng);
  be.embedding_forward(out, tokens, table);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t c = 0; c < d; ++c) CHECK(d64(out)[i * d + c] == d64(table)[i32p(tokens)[i] * d + c]);

  Tensor dtable = ar.f({V, d});
  be.embedding_backward(dtable, tokens, R);
  auto loss = [&] {
    be.embedding_forward(out, tokens, table);
    return weighted_sum(R, out);
  };
  check_gradient(loss, d64(table), d64(dtable), table.numel(), {.what = "embedding dtable"});
  // "acc": a second backward adds the same gradient again.
  const std::vector<double> once = to_vector(dtable);
  be.embedding_backward(dtable, tokens, R);
  for (int64_t i = 0; i < V * d; ++i) CHECK(d64(dtable)[i] == Approx(2 * once[i]));
  for (int64_t c = 0; c < d; ++c) CHECK(d64(dtable)[4 * d + c] == 0.0);

  Tensor bad = ar.i32({2}, {1, 7});
  CHECK_THROWS_AS(be.embedding_forward(ar.f({2, d}), bad, table), InternalError);
  Tensor neg = ar.i32({2}, {-1, 0});
  CHECK_THROWS_AS(be.embedding_backward(dtable, neg, ar.f({2, d})), InternalError);
}

TEST_CASE("cpu rmsnorm: forward against the formula", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(11);
  const int64_t N = 6, d = 16;
  const double eps = 1e-5;
  Tensor x = ar.randn({N, d}, rng, 3.0), w = ar.randn({d}, rng), out = ar.f({N, d}), rstd = ar.f({N});
  be.rmsnorm_forward(out, rstd, x, w, eps);
  for (int64_t t = 0; t < N; ++t) {
    double ms = 0;
    for (int64_t j = 0; j < d; ++j) ms += d64(x)[t * d + j] * d64(x)[t * d + j] / d;
    const double r = 1.0 / std::sqrt(ms + eps);
    CHECK(d64(rstd)[t] == Approx(r).epsilon(1e-14));
    for (int64_t j = 0; j < d; ++j)
      CHECK(d64(out)[t * d + j] == Approx(d64(x)[t * d + j] * r * d64(w)[j]).epsilon(1e-14));
  }
  CHECK_THROWS_WITH(be.rmsnorm_forward(out, rstd, x, ar.f({d + 1}), eps),
                    Catch::Contains("(17)") && Catch::Contains("16 elements"));
}

TEST_CASE("cpu rmsnorm_residual_forward: add then rmsnorm, bit for bit, in place too", "[cpu]") {
  for (const DType dt : {DType::F64, DType::F32}) {
    CpuBackend be(dt, 2);
    Arena ar(be);
    std::mt19937_64 rng(12);
    const int64_t N = 9, d = 24;
    const double eps = 1e-5;
    Tensor a = ar.randn({N, d}, rng, 3.0), b = ar.randn({N, d}, rng), w = ar.randn({d}, rng);
    Tensor res = ar.f({N, d}), out = ar.f({N, d}), rstd = ar.f({N});
    be.rmsnorm_residual_forward(res, out, rstd, a, b, w, eps);
    Tensor res2 = ar.f({N, d}), out2 = ar.f({N, d}), rstd2 = ar.f({N});
    be.add(res2, a, b);
    be.rmsnorm_forward(out2, rstd2, res2, w, eps);
    CHECK(to_vector(res) == to_vector(res2));
    CHECK(to_vector(out) == to_vector(out2));
    CHECK(to_vector(rstd) == to_vector(rstd2));
    for (int64_t i = 0; i < N * d; ++i) {
      const double sum = Arena::get(a, i) + Arena::get(b, i);  // exact for two floats
      CHECK(Arena::get(res, i) == (dt == DType::F32 ? double(static_cast<float>(sum)) : sum));
    }
    // res_out aliasing a (the model's res_mid += residual).
    be.rmsnorm_residual_forward(a, out2, rstd2, a, b, w, eps);
    CHECK(to_vector(a) == to_vector(res));
    CHECK(to_vector(out2) == to_vector(out));
    CHECK_THROWS_WITH(be.rmsnorm_residual_forward(res, out, rstd, a, ar.f({N, d + 1}), w, eps),
                      Catch::Contains("rmsnorm_residual_forward: b has shape") && Catch::Contains("expected (9, 24)"));
  }
}

TEST_CASE("cpu rmsnorm: gradients with respect to x and w (accumulated)", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(12);
  const int64_t N = 5, d = 12;
  const double eps = 1e-5;
  Tensor x = ar.randn({N, d}, rng), w = ar.randn({d}, rng), R = ar.randn({N, d}, rng);
  Tensor out = ar.f({N, d}), rstd = ar.f({N});
  auto loss = [&] {
    be.rmsnorm_forward(out, rstd, x, w, eps);
    return weighted_sum(R, out);
  };
  loss();
  // dx and dw start at 1 to check that the op accumulates; the gradient is what it adds.
  Tensor dx = ar.f({N, d}), dw = ar.f({d});
  for (int64_t i = 0; i < N * d; ++i) d64(dx)[i] = 1.0;
  for (int64_t i = 0; i < d; ++i) d64(dw)[i] = 1.0;
  be.rmsnorm_backward(dx, dw, R, x, w, rstd);
  for (int64_t i = 0; i < N * d; ++i) d64(dx)[i] -= 1.0;
  for (int64_t i = 0; i < d; ++i) d64(dw)[i] -= 1.0;
  check_gradient(loss, d64(x), d64(dx), x.numel(), {.what = "rmsnorm dx"});
  check_gradient(loss, d64(w), d64(dw), w.numel(), {.what = "rmsnorm dw"});
}
