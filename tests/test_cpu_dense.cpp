// CPU backend: matmul (forward vs a naive triple loop, gradients for the four transpose
// combinations), element-wise ops, sum_squares, AdamW, memory ops and entry checks.
#include "test_cpu_util.h"

#include <cmath>
#include <tuple>

using namespace am;
using namespace am::test;

namespace {

// Naive op(a) op(b), a and b stored row-major as documented in backend.h.
std::vector<double> naive_matmul(const Tensor& a, bool ta, const Tensor& b, bool tb, int64_t M, int64_t N, int64_t K) {
  std::vector<double> c(static_cast<size_t>(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double av = ta ? d64(a)[k * M + i] : d64(a)[i * K + k];
        const double bv = tb ? d64(b)[j * K + k] : d64(b)[k * N + j];
        s += av * bv;
      }
      c[i * N + j] = s;
    }
  return c;
}

}  // namespace

TEST_CASE("cpu matmul: forward matches a naive product, alpha/beta, beta 0 overwrites NaN", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(1);
  // The second shape spans several tiles of C, with partial tiles at both edges, and is large
  // enough to run the tiles in parallel.
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{5, 4, 3}, {300, 520, 16}})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        Tensor a = ta ? ar.randn({K, M}, rng) : ar.randn({M, K}, rng);
        Tensor b = tb ? ar.randn({N, K}, rng) : ar.randn({K, N}, rng);
        Tensor c = ar.randn({M, N}, rng);
        const std::vector<double> c0 = to_vector(c);
        const std::vector<double> ref = naive_matmul(a, ta, b, tb, M, N, K);
        INFO("M=" << M << " N=" << N << " K=" << K << " trans_a=" << ta << " trans_b=" << tb);
        be.matmul(c, a, ta, b, tb, 2.0, 0.5);
        int64_t bad = 0;  // entries off by more than 1e-13 relative (NaN included)
        for (int64_t i = 0; i < M * N; ++i) {
          const double want = 2 * ref[i] + 0.5 * c0[i];
          bad += !(std::fabs(d64(c)[i] - want) <= 1e-13 * (1.0 + std::fabs(want)));
        }
        CHECK(bad == 0);
        for (int64_t i = 0; i < M * N; ++i) d64(c)[i] = NAN;
        be.matmul(c, a, ta, b, tb, 1.0, 0.0);
        bad = 0;
        for (int64_t i = 0; i < M * N; ++i) {
          bad += !(std::fabs(d64(c)[i] - ref[i]) <= 1e-13 * (1.0 + std::fabs(ref[i])));
        }
        CHECK(bad == 0);
      }
}

TEST_CASE("cpu matmul: gradients for all four transpose combinations", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  std::mt19937_64 rng(2);
  const int64_t M = 4, N = 5, K = 3;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Arena ar(be);
      Tensor a = ta ? ar.randn({K, M}, rng) : ar.randn({M, K}, rng);
      Tensor b = tb ? ar.randn({N, K}, rng) : ar.randn({K, N}, rng);
      Tensor c = ar.f({M, N}), R = ar.randn({M, N}, rng);
      auto loss = [&] {
        be.matmul(c, a, ta, b, tb, 1.0, 0.0);
        return weighted_sum(R, c);
      };
      // dL/dop(a) = R op(b)^T, dL/dop(b) = op(a)^T R, stored in a's and b's layouts.
      Tensor da = ta ? ar.f({K, M}) : ar.f({M, K});
      Tensor db = tb ? ar.f({N, K}) : ar.f({K, N});
      if (ta)
        be.matmul(da, b, tb, R, true, 1.0, 0.0);
      else
        be.matmul(da, R, false, b, !tb, 1.0, 0.0);
      if (tb)
        be.matmul(db, R, true, a, ta, 1.0, 0.0);
      else
        be.matmul(db, a, !ta, R, false, 1.0, 0.0);
      const std::string tag = std::string("trans_a=") + (ta ? "1" : "0") + " trans_b=" + (tb ? "1" : "0");
      check_gradient(loss, d64(a), d64(da), a.numel(), {.what = "matmul da " + tag});
      check_gradient(loss, d64(b), d64(db), b.numel(), {.what = "matmul db " + tag});
    }
}

TEST_CASE("cpu matmul: mismatched shapes are rejected and name both shapes", "[cpu]") {
  CpuBackend be(DType::F64, 1);
  Arena ar(be);
  Tensor a = ar.f({4, 3}), b = ar.f({4, 5}), c = ar.f({4, 5});
  CHECK_THROWS_WITH(be.matmul(c, a, false, b, false, 1, 0), Catch::Contains("(4, 3)") && Catch::Contains("(4, 5)"));
  Tensor c35 = ar.f({3, 5});
  CHECK_NOTHROW(be.matmul(c35, a, true, b, false, 1, 0));
  Tensor wrong = ar.make(DType::F32, {3, 5});
  CHECK_THROWS_AS(be.matmul(wrong, a, true, b, false, 1, 0), InternalError);
}

TEST_CASE("cpu elementwise: add (aliased), axpy, scale, sum_squares", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(3);
  const int64_t n = 100000;  // several reduction chunks, parallel
  Tensor a = ar.randn({n}, rng), b = ar.randn({n}, rng), out = ar.f({n});
  const std::vector<double> a0 = to_vector(a), b0 = to_vector(b);
  be.add(out, a, b);
  be.add(a, a, b);  // aliased output
  for (int64_t i = 0; i < n; i += 997) {
    CHECK(d64(out)[i] == a0[i] + b0[i]);
    CHECK(d64(a)[i] == a0[i] + b0[i]);
  }
  be.copy(a, ar.clone(b));
  be.axpy(a, b, -3.0);  // a = b - 3b = -2b
  be.scale(b, 0.5);
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += b0[i] * b0[i];
  for (int64_t i = 0; i < n; i += 997) {
    CHECK(d64(a)[i] == Approx(-2 * b0[i]));
    CHECK(d64(b)[i] == 0.5 * b0[i]);
  }
  CHECK(be.sum_squares(ar.clone(a)) == Approx(4 * ss).epsilon(1e-12));
  Tensor three = ar.f({3});
  d64(three)[0] = 1;
  d64(three)[1] = -2;
  d64(three)[2] = 3;
  CHECK(be.sum_squares(three) == 14.0);
}

TEST_CASE("cpu memory: alloc is 64-byte aligned, upload/download/zero/copy round-trip", "[cpu]") {
  CpuBackend be(DType::F32, 1);
  for (size_t bytes : {size_t(0), size_t(1), size_t(100), size_t(4096)}) {
    Buffer buf = be.alloc(bytes);
    CHECK(reinterpret_cast<uintptr_t>(buf.get()) % 64 == 0);
  }
  Buffer buf = be.alloc(5 * sizeof(float)), other = be.alloc(5 * sizeof(float));
  Tensor t = buf.view(DType::F32, {5}), u = other.view(DType::F32, {5});
  const float src[5] = {1, 2, 3, 4, 5};
  float back[5] = {};
  be.upload(t, src);
  be.copy(u, t);
  be.zero(t);
  be.download(back, u);
  for (int i = 0; i < 5; ++i) CHECK(back[i] == src[i]);
  be.download(back, t);
  for (int i = 0; i < 5; ++i) CHECK(back[i] == 0.0f);
  CHECK(be.name() == "cpu");
  CHECK(be.describe().find("F32") != std::string::npos);
  CHECK_THROWS_AS(CpuBackend(DType::BF16, 1), UserError);
  CHECK(make_cpu_backend(DType::F64, 1)->dtype() == DType::F64);
}

TEST_CASE("cpu adamw: one and two steps against the formula computed by hand", "[cpu]") {
  CpuBackend be(DType::F64, 1);
  Arena ar(be);
  Tensor p = ar.f({3}), g = ar.f({3}), m = ar.f({3}), v = ar.f({3});
  const double p0[3] = {1.0, -0.5, 2.0}, g0[3] = {0.1, -0.2, 0.0};
  for (int i = 0; i < 3; ++i) {
    d64(p)[i] = p0[i];
    d64(g)[i] = g0[i];
  }
  AdamWStep s;
  s.lr = 0.01;
  s.beta1 = 0.9;
  s.beta2 = 0.95;
  s.eps = 1e-8;
  s.weight_decay = 0.1;
  s.grad_scale = 0.5;
  s.step = 1;
  be.adamw_update(p, g, m, v, s);
  // Step 1 by hand, entry 0: g = 0.05, m = 0.005, v = 0.05 * 0.0025 = 1.25e-4,
  // m_hat = 0.005 / 0.1 = 0.05, v_hat = 1.25e-4 / 0.05 = 2.5e-3, sqrt = 0.05,
  // p = 1 - 0.01 * 0.1 * 1 = 0.999, then p -= 0.01 * 0.05 / (0.05 + 1e-8).
  CHECK(d64(m)[0] == Approx(0.005).epsilon(1e-14));
  CHECK(d64(v)[0] == Approx(1.25e-4).epsilon(1e-14));
  CHECK(d64(p)[0] == Approx(0.999 - 0.01 * 0.05 / (0.05 + 1e-8)).epsilon(1e-14));
  // Entry 1: g = -0.1 -> same magnitudes, opposite sign; p = -0.5 * 0.999 + 0.01 * 0.1/(0.1+1e-8).
  CHECK(d64(p)[1] == Approx(-0.4995 + 0.01 * 0.1 / (0.1 + 1e-8)).epsilon(1e-14));
  // Entry 2: zero gradient: only the decay acts.
  CHECK(d64(p)[2] == Approx(2.0 * 0.999).epsilon(1e-15));
  CHECK(d64(m)[2] == 0.0);
  // Step 2 on entry 0 with the same gradient: m = 0.9*0.005 + 0.1*0.05 = 0.0095,
  // v = 0.95*1.25e-4 + 0.05*0.0025 = 2.4375e-4; m_hat = 0.0095/0.19 = 0.05,
  // v_hat = 2.4375e-4/0.0975 = 2.5e-3.
  const double p1 = d64(p)[0];
  s.step = 2;
  be.adamw_update(p, g, m, v, s);
  CHECK(d64(m)[0] == Approx(0.0095).epsilon(1e-14));
  CHECK(d64(v)[0] == Approx(2.4375e-4).epsilon(1e-14));
  CHECK(d64(p)[0] == Approx(p1 * 0.999 - 0.01 * 0.05 / (0.05 + 1e-8)).epsilon(1e-14));
}
