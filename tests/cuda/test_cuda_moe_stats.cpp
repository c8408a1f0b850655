// CUDA vs the CPU reference for the MoE statistics ops of cuda/moe_stats.cu (Backend, "the MoE
// layer on the device"): F64 vectors kept on the device. Tolerances (|cuda - cpu| <= atol + rtol |cpu|):
//  - column_sums_to: 1e-12 relative + 1e-9 absolute (double sums of the same floats, other order);
//  - entropy_sum_to, sum_squares_to: 1e-10 relative (per-block partials vs fixed CPU chunks);
//  - slot_counts, sum_to, balance_loss's f, selection_bias_update: exact (integers, or the same
//    double operations in the same order on one thread);
//  - balance_loss's value, axpy_f64: 1e-14 relative (the device may fuse a multiply-add);
//  - add_vector_to_rows: 1e-7 relative (one double expression rounded once to fp32).
// Reductions run twice on the device and must give the same bits.
#include "cuda_test_util.h"

#include <catch2/catch.hpp>

#include <cmath>
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

std::vector<double> zeros(size_t n) { return std::vector<double>(n, 0.0); }

std::vector<float> probs_like(size_t n, uint64_t seed) {
  std::vector<float> p = randn(n, seed);
  for (auto& x : p) x = std::abs(x) / 3.f;
  if (n > 3) p[3] = 0.f;  // 0 log 0 = 0
  return p;
}

}  // namespace

TEST_CASE("cuda column_sums_to, entropy_sum_to and sum_squares_to match the CPU", "[cuda]") {
  Pair p;
  struct Shape {
    int64_t N, n;
  };
  for (const Shape s : {Shape{1, 1}, Shape{7, 5}, Shape{300, 12}, Shape{0, 4}}) {
    INFO("N " << s.N << " n " << s.n);
    Twin x(p, {s.N, s.n}, probs_like(static_cast<size_t>(s.N * s.n), 5 + s.N));
    Twin cs(p, {s.n}, zeros(static_cast<size_t>(s.n))), ent(p, {1}, zeros(1)), ss(p, {1}, zeros(1));
    p.gpu->column_sums_to(cs.g, x.g);
    p.cpu->column_sums_to(cs.c, x.c);
    const std::vector<double> g = cs.from_gpu<double>(p);
    require_close_f64(g, cs.from_cpu<double>(p), 1e-12, 1e-9);
    p.gpu->column_sums_to(cs.g, x.g);
    REQUIRE(cs.from_gpu<double>(p) == g);  // the same bits again
    for (const double coef : {1.0, 0.25}) {
      p.gpu->entropy_sum_to(ent.g, x.g, coef, 3.0);
      p.cpu->entropy_sum_to(ent.c, x.c, coef, 3.0);
      p.gpu->sum_squares_to(ss.g, x.g, coef, 7.0);
      p.cpu->sum_squares_to(ss.c, x.c, coef, 7.0);
      require_close_f64(ent.from_gpu<double>(p), ent.from_cpu<double>(p), 1e-10, 0);
      require_close_f64(ss.from_gpu<double>(p), ss.from_cpu<double>(p), 1e-10, 0);
      const std::vector<double> e1 = ent.from_gpu<double>(p);
      p.gpu->entropy_sum_to(ent.g, x.g, coef, 3.0);
      REQUIRE(ent.from_gpu<double>(p) == e1);
    }
  }
}

TEST_CASE("cuda slot_counts matches the CPU's slot_stats, empty and null slots included", "[cuda]") {
  Pair p;
  // 6 true + 2 null ids, empty slots (-1); N above one block of threads
  for (const int64_t N : {int64_t{1}, int64_t{9}, int64_t{700}}) {
    INFO("N " << N);
    const int kmax = 3, n_total = 8, n_true = 6;
    Twin slots(p, {N, kmax}, random_ids(static_cast<size_t>(N * kmax), -1, n_total, 40 + N));
    Twin counts(p, {n_total + 1}, zeros(n_total + 1));
    p.gpu->slot_counts(counts.g, slots.g, n_total, n_true);
    p.cpu->slot_counts(counts.c, slots.c, n_total, n_true);
    const std::vector<double> g = counts.from_gpu<double>(p);
    REQUIRE(g == counts.from_cpu<double>(p));
    const Backend::SlotStats st = p.cpu->slot_stats(slots.c, n_total, n_true);
    for (int i = 0; i < n_total; ++i) REQUIRE(g[i] == static_cast<double>(st.per_id[i]));
    REQUIRE(g[n_total] == static_cast<double>(st.rows_without_true));
  }
}

TEST_CASE("cuda axpy_f64, sum_to and add_vector_to_rows match the CPU", "[cuda]") {
  Pair p;
  std::vector<double> a(13), b(13);
  for (size_t i = 0; i < a.size(); ++i) a[i] = std::sin(double(i)) * 1e3, b[i] = std::cos(double(i)) / 7;
  Twin y(p, {13}, a), x(p, {13}, b);
  p.gpu->axpy_f64(y.g, x.g, 0.3);
  p.cpu->axpy_f64(y.c, x.c, 0.3);
  require_close_f64(y.from_gpu<double>(p), y.from_cpu<double>(p), 1e-14, 0);
  Twin out64(p, {1}, zeros(1));
  Twin out32(p, {1}, std::vector<float>{0.f});
  p.gpu->sum_to(out64.g, x.g);
  p.cpu->sum_to(out64.c, x.c);
  REQUIRE(out64.from_gpu<double>(p) == out64.from_cpu<double>(p));
  p.gpu->sum_to(out32.g, x.g);
  p.cpu->sum_to(out32.c, x.c);
  REQUIRE(out32.from_gpu(p) == out32.from_cpu(p));
  p.gpu->sum_to(out32.g, x.g.rows(0, 0));  // nothing: 0
  REQUIRE(out32.from_gpu(p)[0] == 0.f);

  // rows of 7 columns, a vector over the first 5 (F64 with a scale, then F32 as the bias is)
  const int64_t N = 300, C = 7;
  Twin m(p, {N, C}, randn(static_cast<size_t>(N * C), 3));
  Twin v64(p, {5}, std::vector<double>{0.1, -2.5, 3e-3, 0.0, 7.0});
  Twin v32(p, {5}, std::vector<float>{1.f, -0.5f, 0.25f, 2.f, -3.f});
  p.gpu->add_vector_to_rows(m.g, v64.g, 0.7);
  p.cpu->add_vector_to_rows(m.c, v64.c, 0.7);
  p.gpu->add_vector_to_rows(m.g, v32.g, 1.0);
  p.cpu->add_vector_to_rows(m.c, v32.c, 1.0);
  require_close(m.from_gpu(p), m.from_cpu(p), 1e-7, 0);
  const std::vector<float> before = randn(static_cast<size_t>(N * C), 3), after = m.from_cpu(p);
  REQUIRE(after[5] == before[5]);  // columns beyond v untouched
  REQUIRE(after[C + 1] == static_cast<float>(double(before[C + 1]) + (-2.5 * 0.7) + 0.0) - 0.5f);
}

TEST_CASE("cuda balance_loss and selection_bias_update match the CPU and the hand values", "[cuda]") {
  Pair p;
  // 2 true + 2 null ids over 2 tokens: slots (1, 0, 2, 1), P sums (0.5, 0.2, 0.8, 0.5)
  Twin counts(p, {5}, std::vector<double>{1, 0, 2, 1, 1});
  Twin sums(p, {4}, std::vector<double>{0.5, 0.2, 0.8, 0.5});
  for (const bool avg : {false, true}) {
    INFO("average_nulls " << avg);
    Twin value(p, {1}, zeros(1)), f(p, {4}, zeros(4));
    const double aw = 0.1 * (avg ? 4 : 2);
    p.gpu->balance_loss(value.g, f.g, counts.g, sums.g, 2, avg, 2.0, aw);
    p.cpu->balance_loss(value.c, f.c, counts.c, sums.c, 2, avg, 2.0, aw);
    REQUIRE(f.from_gpu<double>(p) == f.from_cpu<double>(p));
    require_close_f64(value.from_gpu<double>(p), value.from_cpu<double>(p), 1e-14, 0);
    // f~ = (0.5, 0, 0.75, 0.75): L = 0.4 * (0.125 + 0.3 + 0.1875); without nulls 0.2 * 0.125
    CHECK(value.from_cpu<double>(p)[0] == Approx(avg ? 0.245 : 0.025).epsilon(1e-12));
  }
  Twin bias(p, {4}, std::vector<float>{0.f, 0.5f, -1.f, 2.f});
  Twin load(p, {4}, std::vector<double>{6, 2, 2, 2});  // mean 3: down, up, up, up
  p.gpu->selection_bias_update(bias.g, load.g, 0.1);
  p.cpu->selection_bias_update(bias.c, load.c, 0.1);
  REQUIRE(bias.from_gpu(p) == bias.from_cpu(p));
  const std::vector<float> want = {static_cast<float>(0.0 - 0.1), static_cast<float>(0.5 + 0.1),
                                   static_cast<float>(-1.0 + 0.1), static_cast<float>(2.0 + 0.1)};
  REQUIRE(bias.from_cpu(p) == want);
}
