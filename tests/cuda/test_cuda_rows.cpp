// CUDA vs the CPU reference (fp32 both) for the row ops of cuda/rows.cu: cross-entropy, softmax
// helpers, column sums, entropy and the column writers, on fresh random inputs and awkward shapes.
// Tolerances (|cuda - cpu| <= atol + rtol |cpu|):
//  - cross-entropy: losses 1e-5 relative / 1e-5 absolute, gradients 1e-5 relative / 1e-9 absolute
//    (float expf on both sides, the device's within 2 ulp; sums in double in another order), for
//    the CUDA fused classifier against the CPU's default composite (forward, then backward) and for
//    the backward alone; the fused kernel and the CUDA forward + backward give the same bits;
//  - softmax, its backward, log-sum-exp: 1e-6 relative, 1e-7 absolute (double exp on both sides);
//  - axpy_rows, add_to_rows: 1e-7 relative (one double expression rounded once to fp32);
//  - column sums: 1e-12 relative + 1e-9 absolute (double sums of the same floats, other order);
//  - entropy sum: 1e-10 relative; entropy backward 1e-6 relative, 1e-7 absolute;
//  - column writers: exact (copies).
// Reductions are also run twice on the device and must give the same bits.
#include "cuda_test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

using namespace am;
using namespace am::test;

namespace {

void require_close_f64(const std::vector<double>& a, const std::vector<double>& b, double rtol, double atol) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("entry " << i << ": cuda " << a[i] << " cpu " << b[i]);
    REQUIRE(std::abs(a[i] - b[i]) <= atol + rtol * std::abs(b[i]));
  }
}

// Random logits with a few large ones (+80) that dominate their rows.
std::vector<float> logits_with_spikes(int64_t N, int64_t n, uint64_t seed, float scale = 3.f) {
  std::vector<float> z = randn(static_cast<size_t>(N * n), seed, scale);
  std::mt19937_64 rng(seed + 1);
  for (int64_t t = 0; t < N; t += 2) {
    z[static_cast<size_t>(t * n + static_cast<int64_t>(rng() % static_cast<uint64_t>(n)))] += 80.f;
  }
  return z;
}

}  // namespace

TEST_CASE("cuda cross-entropy forward and forward-backward match the CPU", "[cuda]") {
  Pair p;
  struct Shape {
    int64_t N, V;
  };
  // V = 50257: a row much longer than a block; V = 1: a single class.
  for (const Shape s : {Shape{1, 1}, Shape{7, 10}, Shape{33, 1000}, Shape{6, 50257}, Shape{0, 5}}) {
    INFO("N " << s.N << " V " << s.V);
    std::vector<int32_t> y = random_ids(static_cast<size_t>(s.N), 0, static_cast<int32_t>(s.V), 50 + s.N);
    if (s.N >= 3) {
      y[1] = -1;  // ignored rows
      y[2] = -100;
    }
    const std::vector<float> z = logits_with_spikes(s.N, s.V, 51);
    Twin targets(p, {s.N}, y), logits(p, {s.N, s.V}, z);
    Twin losses(p, {s.N}, randn(static_cast<size_t>(s.N), 52));
    p.gpu->cross_entropy_forward(losses.g, logits.g, targets.g);
    p.cpu->cross_entropy_forward(losses.c, logits.c, targets.c);
    require_twin_close(p, losses, 1e-5, 1e-5);
    require_twin_close(p, logits, 0, 0);  // the forward leaves the logits alone
    if (s.N >= 3) {
      REQUIRE(losses.from_gpu(p)[1] == 0.f);
      REQUIRE(losses.from_gpu(p)[2] == 0.f);
    }

    const double grad_scale = s.N > 0 ? 1.0 / double(s.N) : 1.0;
    Twin losses2(p, {s.N}, randn(static_cast<size_t>(s.N), 53));
    p.gpu->cross_entropy_forward_backward(losses2.g, logits.g, targets.g, grad_scale);
    p.cpu->cross_entropy_forward_backward(losses2.c, logits.c, targets.c, grad_scale);
    require_twin_close(p, losses2, 1e-5, 1e-5);
    require_twin_close(p, logits, 1e-5, 1e-9);
    const std::vector<float> grad = logits.from_gpu(p);
    if (s.N >= 3) {
      for (int64_t j = 0; j < s.V; ++j) REQUIRE(grad[static_cast<size_t>(s.V + j)] == 0.f);
    }
    // Each kept row of the gradient sums to ~0 (softmax sums to 1, minus the one-hot).
    for (int64_t t = 0; t < s.N; ++t) {
      double sum = 0;
      for (int64_t j = 0; j < s.V; ++j) sum += grad[static_cast<size_t>(t * s.V + j)];
      REQUIRE(std::abs(sum) < 1e-5);
    }

    // Determinism: the same logits give the same bits.
    p.gpu->upload(logits.g, z.data());
    p.gpu->cross_entropy_forward_backward(losses2.g, logits.g, targets.g, grad_scale);
    REQUIRE(logits.from_gpu(p) == grad);
  }
}

TEST_CASE("cuda cross-entropy backward matches the CPU, in place or not, and the fused classifier", "[cuda]") {
  Pair p;
  struct Shape {
    int64_t N, V;
  };
  for (const Shape s : {Shape{1, 1}, Shape{7, 10}, Shape{33, 1000}, Shape{4, 50257}, Shape{0, 5}}) {
    INFO("N " << s.N << " V " << s.V);
    std::vector<int32_t> y = random_ids(static_cast<size_t>(s.N), 0, static_cast<int32_t>(s.V), 80 + s.N);
    if (s.N >= 3) y[2] = -1;  // an ignored row: a zero gradient row
    const std::vector<float> z = logits_with_spikes(s.N, s.V, 81);
    const size_t nv = static_cast<size_t>(s.N * s.V);
    const double grad_scale = 0.37;
    Twin targets(p, {s.N}, y), logits(p, {s.N, s.V}, z), grad(p, {s.N, s.V}, randn(nv, 82));
    p.gpu->cross_entropy_backward(grad.g, logits.g, targets.g, grad_scale);
    p.cpu->cross_entropy_backward(grad.c, logits.c, targets.c, grad_scale);
    require_twin_close(p, grad, 1e-5, 1e-9);
    require_twin_close(p, logits, 0, 0);  // not in place: the logits are left alone
    const std::vector<float> g1 = grad.from_gpu(p);
    if (s.N >= 3) {
      for (int64_t j = 0; j < s.V; ++j) REQUIRE(g1[static_cast<size_t>(2 * s.V + j)] == 0.f);
    }

    // In place, the same bits.
    p.gpu->cross_entropy_backward(logits.g, logits.g, targets.g, grad_scale);
    REQUIRE(logits.from_gpu(p) == g1);

    // The fused override gives the bits of the CUDA forward, then backward (the default composite).
    Twin losses(p, {s.N}, randn(static_cast<size_t>(s.N), 83)), losses2(p, {s.N}, randn(static_cast<size_t>(s.N), 84));
    p.gpu->upload(logits.g, z.data());
    p.gpu->cross_entropy_forward(losses.g, logits.g, targets.g);
    p.gpu->cross_entropy_forward_backward(losses2.g, logits.g, targets.g, grad_scale);
    REQUIRE(losses2.from_gpu(p) == losses.from_gpu(p));
    REQUIRE(logits.from_gpu(p) == g1);
  }
}

// Targets are checked on the host before the upload (Transformer::forward); the CUDA op's guard:
// a target >= V reads nothing, its loss is NaN (the trainer's non-finite check stops) and its
// gradient row zero; the other rows are as the CPU computes them.
TEST_CASE("cuda cross-entropy guards a target >= V without a host read-back", "[cuda]") {
  Pair p;
  const int64_t N = 9, V = 40;
  std::vector<int32_t> y = random_ids(N, 0, V, 60);
  y[5] = static_cast<int32_t>(V);
  std::vector<int32_t> y_cpu = y;
  y_cpu[5] = -1;  // an ignored row: loss 0, zero gradient
  const std::vector<float> z = randn(N * V, 61), l0 = randn(N, 62);
  Twin targets(p, {N}, y), targets_cpu(p, {N}, y_cpu), logits(p, {N, V}, z), losses(p, {N}, l0);
  p.gpu->cross_entropy_forward_backward(losses.g, logits.g, targets.g, 1.0);
  p.cpu->cross_entropy_forward_backward(losses.c, logits.c, targets_cpu.c, 1.0);
  std::vector<float> lg = losses.from_gpu(p), lc = losses.from_cpu(p);
  REQUIRE(std::isnan(lg[5]));
  lg[5] = lc[5];
  require_close(lg, lc, 1e-5, 1e-5);
  require_twin_close(p, logits, 1e-5, 1e-9);
  for (int64_t j = 0; j < V; ++j) REQUIRE(logits.from_gpu(p)[5 * V + j] == 0.f);
  // The backward alone (the default composite's second op) guards the same way.
  Twin grad(p, {N, V}, randn(N * V, 63));
  p.gpu->upload(logits.g, z.data());
  p.gpu->cross_entropy_backward(grad.g, logits.g, targets.g, 1.0);
  p.cpu->upload(logits.c, z.data());
  p.cpu->cross_entropy_backward(grad.c, logits.c, targets_cpu.c, 1.0);
  require_twin_close(p, grad, 1e-5, 1e-9);
  for (int64_t j = 0; j < V; ++j) REQUIRE(grad.from_gpu(p)[5 * V + j] == 0.f);
}

TEST_CASE("cuda softmax, its backward and log-sum-exp match the CPU, large logits included", "[cuda]") {
  Pair p;
  struct Shape {
    int64_t N, n;
  };
  for (const Shape s : {Shape{1, 1}, Shape{9, 8}, Shape{33, 100}, Shape{4, 3000}, Shape{1000, 64}, Shape{0, 4}}) {
    INFO("N " << s.N << " n " << s.n);
    const size_t nn = static_cast<size_t>(s.N * s.n);
    const std::vector<float> zh = logits_with_spikes(s.N, s.n, 70);
    Twin z(p, {s.N, s.n}, zh), pr(p, {s.N, s.n}, randn(nn, 71));
    p.gpu->softmax_rows(pr.g, z.g);
    p.cpu->softmax_rows(pr.c, z.c);
    require_twin_close(p, pr, 1e-6, 1e-7);

    // In place (p aliases z) gives the same bits as out of place.
    Twin zin(p, {s.N, s.n}, zh);
    p.gpu->softmax_rows(zin.g, zin.g);
    REQUIRE(zin.from_gpu(p) == pr.from_gpu(p));

    Twin dp(p, {s.N, s.n}, randn(nn, 72)), dz(p, {s.N, s.n}, randn(nn, 73));
    p.gpu->softmax_rows_backward(dz.g, dp.g, pr.g);
    p.cpu->softmax_rows_backward(dz.c, dp.c, pr.c);
    require_twin_close(p, dz, 1e-6, 1e-7);

    Twin lse(p, {s.N}, randn(static_cast<size_t>(s.N), 74));
    p.gpu->logsumexp_rows(lse.g, z.g);
    p.cpu->logsumexp_rows(lse.c, z.c);
    require_twin_close(p, lse, 1e-6, 1e-7);
    for (float v : lse.from_gpu(p)) REQUIRE(std::isfinite(v));
  }
}

TEST_CASE("cuda axpy_rows and add_to_rows match the CPU", "[cuda]") {
  Pair p;
  struct Shape {
    int64_t N, n;
  };
  for (const Shape s : {Shape{1, 1}, Shape{50, 7}, Shape{300, 257}, Shape{0, 3}}) {
    INFO("N " << s.N << " n " << s.n);
    const size_t nn = static_cast<size_t>(s.N * s.n);
    Twin y(p, {s.N, s.n}, randn(nn, 80)), x(p, {s.N, s.n}, randn(nn, 81));
    Twin sc(p, {s.N}, randn(static_cast<size_t>(s.N), 82));
    p.gpu->axpy_rows(y.g, x.g, sc.g, -0.37);
    p.cpu->axpy_rows(y.c, x.c, sc.c, -0.37);
    require_twin_close(p, y, 1e-7, 0);

    std::vector<double> v(static_cast<size_t>(s.n));
    for (size_t j = 0; j < v.size(); ++j) v[j] = 0.1 * double(j) - 1.0 / 3.0;
    p.gpu->add_to_rows(y.g, v);
    p.cpu->add_to_rows(y.c, v);
    require_twin_close(p, y, 1e-7, 0);
  }
}

TEST_CASE("cuda column sums match the CPU, tall matrices included", "[cuda]") {
  Pair p;
  struct Shape {
    int64_t N, n;
  };
  // 100000 rows: 782 row chunks; 300 columns: two column blocks; 0 rows: zeros.
  for (const Shape s : {Shape{1, 1}, Shape{100000, 3}, Shape{1000, 300}, Shape{129, 1}, Shape{0, 4}}) {
    INFO("N " << s.N << " n " << s.n);
    Twin x(p, {s.N, s.n}, randn(static_cast<size_t>(s.N * s.n), 90, 2.f));
    const std::vector<double> g = p.gpu->column_sums(x.g), c = p.cpu->column_sums(x.c);
    REQUIRE(g.size() == static_cast<size_t>(s.n));
    require_close_f64(g, c, 1e-12, 1e-9);
    REQUIRE(p.gpu->column_sums(x.g) == g);  // the same bits again
  }
}

TEST_CASE("cuda entropy sum and backward match the CPU", "[cuda]") {
  Pair p;
  for (const int64_t n : {int64_t(1), int64_t(1000), int64_t(100003), int64_t(0)}) {
    INFO("n " << n);
    std::vector<float> ph = randn(static_cast<size_t>(n), 100);
    for (float& v : ph) v = std::abs(v) / 3.f;
    for (size_t i = 0; i < ph.size(); i += 7) ph[i] = 0.f;  // 0 log 0 = 0, no gradient
    Twin pt(p, {n}, ph);
    const double g = p.gpu->entropy_sum(pt.g), c = p.cpu->entropy_sum(pt.c);
    REQUIRE(std::abs(g - c) <= 1e-10 * std::abs(c));
    REQUIRE(p.gpu->entropy_sum(pt.g) == g);

    Twin dp(p, {n}, randn(static_cast<size_t>(n), 101));
    p.gpu->entropy_backward(dp.g, pt.g, 0.25);
    p.cpu->entropy_backward(dp.c, pt.c, 0.25);
    require_twin_close(p, dp, 1e-6, 1e-7);
  }
}

TEST_CASE("cuda broadcast_columns and copy_columns match the CPU", "[cuda]") {
  Pair p;
  struct Case {
    int64_t N, C, m, col;
  };
  // The last columns, one column, an empty column range, no rows, and several blocks (N * m >
  // 256: a partial last block and warp).
  for (const Case c : {Case{13, 10, 4, 3}, Case{1, 1, 1, 0}, Case{40, 9, 3, 6}, Case{5, 6, 0, 6}, Case{0, 4, 2, 1},
                       Case{300, 11, 5, 2}}) {
    INFO("N " << c.N << " C " << c.C << " m " << c.m << " col " << c.col);
    const size_t nc = static_cast<size_t>(c.N * c.C);
    const int64_t vn = std::max<int64_t>(c.m, 1);  // a Twin of >= 1 element, viewed as its first m
    Twin x(p, {c.N, c.C}, randn(nc, 110)), v(p, {vn}, randn(static_cast<size_t>(vn), 111));
    Tensor vg = v.g.rows(0, c.m), vc = v.c.rows(0, c.m);
    p.gpu->broadcast_columns(x.g, vg, c.col);
    p.cpu->broadcast_columns(x.c, vc, c.col);
    require_twin_close(p, x, 0, 0);

    Twin src(p, {c.N, c.m}, randn(static_cast<size_t>(c.N * c.m), 112));
    p.gpu->copy_columns(x.g, src.g, c.col);
    p.cpu->copy_columns(x.c, src.c, c.col);
    require_twin_close(p, x, 0, 0);
  }
  Twin x(p, {4, 5}, randn(20, 113)), v(p, {3}, randn(3, 114));
  REQUIRE_THROWS_AS(p.gpu->broadcast_columns(x.g, v.g, 3), InternalError);
  REQUIRE_THROWS_AS(p.gpu->copy_columns(x.g, x.g, 1), InternalError);
}
