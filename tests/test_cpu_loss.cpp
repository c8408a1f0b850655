// CPU backend: SiLU, SwiGLU, cross-entropy and the row-softmax helpers (softmax, logsumexp,
// axpy_rows, column_sums / add_to_rows), forward against direct formulas and gradients.
#include "test_cpu_util.h"

#include <cmath>

using namespace am;
using namespace am::test;

TEST_CASE("cpu silu: forward formula and gradient (accumulated)", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(29);
  const int64_t M = 4, f = 6;
  Tensor x = ar.randn({M, f}, rng, 2.0), y = ar.f({M, f}), R = ar.randn({M, f}, rng);
  be.silu_forward(y, x);
  for (int64_t i = 0; i < M * f; ++i) {
    const double v = d64(x)[i];
    CHECK(d64(y)[i] == Approx(v / (1 + std::exp(-v))).epsilon(1e-14));
  }
  auto loss = [&] {
    be.silu_forward(y, x);
    return weighted_sum(R, y);
  };
  // "acc": the gradient lands on top of what dx held.
  Tensor dx0 = ar.randn({M, f}, rng), dx = ar.clone(dx0);
  be.silu_backward(dx, R, x);
  be.axpy(dx, dx0, -1.0);
  check_gradient(loss, d64(x), d64(dx), x.numel(), {.what = "silu dx"});
}

TEST_CASE("cpu swiglu: forward formula and gradients with respect to g and u", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(30);
  const int64_t M = 4, f = 6;
  Tensor g = ar.randn({M, f}, rng, 2.0), u = ar.randn({M, f}, rng), h = ar.f({M, f});
  Tensor R = ar.randn({M, f}, rng);
  be.swiglu_forward(h, g, u);
  for (int64_t i = 0; i < M * f; ++i) {
    const double gv = d64(g)[i], uv = d64(u)[i];
    CHECK(d64(h)[i] == Approx(gv / (1 + std::exp(-gv)) * uv).epsilon(1e-14));
  }
  auto loss = [&] {
    be.swiglu_forward(h, g, u);
    return weighted_sum(R, h);
  };
  Tensor dg = ar.f({M, f}), du = ar.f({M, f});
  for (int64_t i = 0; i < M * f; ++i) d64(dg)[i] = d64(du)[i] = NAN;  // "write"
  be.swiglu_backward(dg, du, R, g, u);
  check_gradient(loss, d64(g), d64(dg), g.numel(), {.what = "swiglu dg"});
  check_gradient(loss, d64(u), d64(du), u.numel(), {.what = "swiglu du"});
  // SwiGLU is SiLU(g) * u, the two steps of the SiLU op.
  Tensor sg = ar.f({M, f});
  be.swiglu_forward(h, g, u);  // the gradient checks left h at a perturbed g
  be.silu_forward(sg, g);
  for (int64_t i = 0; i < M * f; ++i) CHECK(d64(h)[i] == Approx(d64(sg)[i] * d64(u)[i]).epsilon(1e-15));
}

TEST_CASE("cpu cross-entropy: losses against log-softmax, ignored targets, bad targets", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(31);
  const int64_t N = 5, V = 11;
  Tensor logits = ar.randn({N, V}, rng, 3.0), losses = ar.f({N});
  for (int64_t j = 0; j < V; ++j) d64(logits)[j] += 800.0;  // row 0 would overflow a naive exp
  Tensor targets = ar.i32({N}, {3, -1, 10, 0, 7});
  be.cross_entropy_forward(losses, logits, targets);
  for (int64_t i = 0; i < N; ++i) {
    const int32_t y = i32p(targets)[i];
    if (y < 0) {
      CHECK(d64(losses)[i] == 0.0);
      continue;
    }
    // -log softmax(x)[y], with the shift by x[y] done here so no exp overflows.
    const double* x = d64(logits) + i * V;
    double z = 0;
    for (int64_t j = 0; j < V; ++j) z += std::exp(x[j] - x[y]);
    CHECK(d64(losses)[i] == Approx(std::log(z)).epsilon(1e-12));
  }
  CHECK_THROWS_AS(be.cross_entropy_forward(losses, logits, ar.i32({N}, {3, -1, 11, 0, 7})), InternalError);
}

TEST_CASE("cpu cross-entropy: forward_backward gradient, scaled, with an ignored row", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(32);
  const int64_t N = 4, V = 9;
  const double grad_scale = 0.7;
  Tensor logits = ar.randn({N, V}, rng, 2.0), losses = ar.f({N});
  Tensor targets = ar.i32({N}, {2, 8, -5, 0});
  auto loss = [&] {
    be.cross_entropy_forward(losses, logits, targets);
    double s = 0;
    for (int64_t i = 0; i < N; ++i) s += d64(losses)[i];
    return grad_scale * s;
  };
  const double l0 = loss();
  const std::vector<double> fwd_losses = to_vector(losses);
  Tensor grad = ar.clone(logits), losses2 = ar.f({N});
  be.cross_entropy_forward_backward(losses2, grad, targets, grad_scale);
  for (int64_t i = 0; i < N; ++i) CHECK(d64(losses2)[i] == fwd_losses[i]);
  for (int64_t j = 0; j < V; ++j) CHECK(d64(grad)[2 * V + j] == 0.0);
  CHECK(l0 > 0);
  check_gradient(loss, d64(logits), d64(grad), logits.numel(), {.max_entries = 0, .what = "cross-entropy dlogits"});
}

TEST_CASE("cpu cross-entropy backward: gradient against finite differences, in place, the composite", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(33);
  const int64_t N = 5, V = 7;
  const double grad_scale = 1.3;
  Tensor logits = ar.randn({N, V}, rng, 2.0), losses = ar.f({N});
  Tensor targets = ar.i32({N}, {6, -1, 0, 3, 3});
  auto loss = [&] {
    be.cross_entropy_forward(losses, logits, targets);
    double s = 0;
    for (int64_t i = 0; i < N; ++i) s += d64(losses)[i];
    return grad_scale * s;
  };
  Tensor grad = ar.randn({N, V}, rng);  // "write": whatever it held is replaced
  be.cross_entropy_backward(grad, logits, targets, grad_scale);
  for (int64_t j = 0; j < V; ++j) CHECK(d64(grad)[V + j] == 0.0);  // the ignored row
  check_gradient(loss, d64(logits), d64(grad), logits.numel(),
                 {.max_entries = 0, .what = "cross_entropy_backward dlogits"});
  // In place: the same bits.
  Tensor inplace = ar.clone(logits);
  be.cross_entropy_backward(inplace, inplace, targets, grad_scale);
  CHECK(to_vector(inplace) == to_vector(grad));
  // The composite cross_entropy_forward_backward (Backend's default on the CPU): the forward's
  // losses and this gradient, bit for bit.
  Tensor fused = ar.clone(logits), losses2 = ar.f({N});
  be.cross_entropy_forward(losses, logits, targets);
  be.cross_entropy_forward_backward(losses2, fused, targets, grad_scale);
  CHECK(to_vector(losses2) == to_vector(losses));
  CHECK(to_vector(fused) == to_vector(grad));
  // A target >= V, and a dlogits of the wrong shape, are refused.
  CHECK_THROWS_AS(be.cross_entropy_backward(grad, logits, ar.i32({N}, {6, -1, 7, 3, 3}), 1.0), InternalError);
  CHECK_THROWS_WITH(be.cross_entropy_backward(ar.f({N, V + 1}), logits, targets, 1.0),
                    Catch::Contains("cross_entropy_backward: dlogits has shape (5, 8), expected (5, 7)"));
}

TEST_CASE("cpu softmax_rows: forward (also in place) and gradient", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(33);
  const int64_t N = 4, n = 6;
  Tensor z = ar.randn({N, n}, rng, 2.0), p = ar.f({N, n}), R = ar.randn({N, n}, rng);
  be.softmax_rows(p, z);
  for (int64_t t = 0; t < N; ++t) {
    double sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += std::exp(d64(z)[t * n + j]);
    for (int64_t j = 0; j < n; ++j)
      CHECK(d64(p)[t * n + j] == Approx(std::exp(d64(z)[t * n + j]) / sum).epsilon(1e-14));
  }
  Tensor inplace = ar.clone(z);
  be.softmax_rows(inplace, inplace);
  for (int64_t i = 0; i < N * n; ++i) CHECK(d64(inplace)[i] == d64(p)[i]);

  auto loss = [&] {
    be.softmax_rows(p, z);
    return weighted_sum(R, p);
  };
  loss();
  Tensor dz = ar.f({N, n});
  be.softmax_rows_backward(dz, R, p);
  check_gradient(loss, d64(z), d64(dz), z.numel(), {.what = "softmax_rows dz"});
}

TEST_CASE("cpu logsumexp_rows: forward and its gradient (the softmax)", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(34);
  const int64_t N = 3, n = 5;
  Tensor z = ar.randn({N, n}, rng, 2.0), out = ar.f({N}), R = ar.randn({N}, rng);
  d64(z)[0] = 1000.0;  // a large logit must not overflow
  be.logsumexp_rows(out, z);
  for (int64_t t = 0; t < N; ++t) {
    const double* r = d64(z) + t * n;
    double mx = r[0];
    for (int64_t j = 1; j < n; ++j) mx = std::max(mx, r[j]);
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += std::exp(r[j] - mx);
    CHECK(d64(out)[t] == Approx(mx + std::log(s)).epsilon(1e-14));
  }
  d64(z)[0] = 0.3;
  auto loss = [&] {
    be.logsumexp_rows(out, z);
    return weighted_sum(R, out);
  };
  // d/dz lse = softmax(z); scaled by R[t] per row with axpy_rows.
  Tensor p = ar.f({N, n}), dz = ar.f({N, n});
  be.softmax_rows(p, z);
  be.axpy_rows(dz, p, R, 1.0);
  check_gradient(loss, d64(z), d64(dz), z.numel(), {.what = "logsumexp_rows dz"});
}

TEST_CASE("cpu axpy_rows: forward and gradients with respect to x and s", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(35);
  const int64_t N = 4, n = 3;
  const double alpha = -1.3;
  Tensor y0 = ar.randn({N, n}, rng), x = ar.randn({N, n}, rng), s = ar.randn({N}, rng);
  Tensor y = ar.clone(y0), R = ar.randn({N, n}, rng);
  be.axpy_rows(y, x, s, alpha);
  for (int64_t t = 0; t < N; ++t)
    for (int64_t j = 0; j < n; ++j)
      CHECK(d64(y)[t * n + j] == Approx(d64(y0)[t * n + j] + alpha * d64(s)[t] * d64(x)[t * n + j]));
  auto loss = [&] {
    be.copy(y, y0);
    be.axpy_rows(y, x, s, alpha);
    return weighted_sum(R, y);
  };
  Tensor dx = ar.f({N, n}), ds = ar.f({N});
  be.axpy_rows(dx, R, s, alpha);     // dL/dx[t] = alpha s[t] R[t]
  for (int64_t t = 0; t < N; ++t) {  // dL/ds[t] = alpha <R[t], x[t]>
    for (int64_t j = 0; j < n; ++j) d64(ds)[t] += alpha * d64(R)[t * n + j] * d64(x)[t * n + j];
  }
  check_gradient(loss, d64(x), d64(dx), x.numel(), {.what = "axpy_rows dx"});
  check_gradient(loss, d64(s), d64(ds), s.numel(), {.what = "axpy_rows ds"});
}

TEST_CASE("cpu column_sums / add_to_rows: forward and the adjoint pair's gradient", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(36);
  const int64_t N = 700, n = 5;  // enough rows for the parallel path
  Tensor x0 = ar.randn({N, n}, rng), x = ar.f({N, n}), R = ar.randn({N, n}, rng);
  const std::vector<double> cs = be.column_sums(x0);
  REQUIRE(cs.size() == size_t(n));
  for (int64_t j = 0; j < n; ++j) {
    double s = 0;
    for (int64_t t = 0; t < N; ++t) s += d64(x0)[t * n + j];
    CHECK(cs[j] == Approx(s).epsilon(1e-13));
  }
  std::vector<double> v = {0.5, -1.0, 2.0, 0.0, 3.0};
  be.copy(x, x0);
  be.add_to_rows(x, v);
  for (int64_t t = 0; t < N; t += 37)
    for (int64_t j = 0; j < n; ++j) CHECK(d64(x)[t * n + j] == d64(x0)[t * n + j] + v[j]);
  // L = sum R * (x0 + 1 v^T): dL/dv = column_sums(R).
  auto loss = [&] {
    be.copy(x, x0);
    be.add_to_rows(x, v);
    return weighted_sum(R, x);
  };
  const std::vector<double> dv = be.column_sums(R);
  check_gradient(loss, v.data(), dv.data(), n, {.what = "add_to_rows dv"});
}
