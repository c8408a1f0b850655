// CPU backend: AoE activation norms (block norms and their gradients, the block gather / scatter
// pair), the column writers, and the entropy loss (alone and after a softmax). Thread-count
// invariance is in test_cpu_determinism.cpp.
#include "test_cpu_util.h"

#include <cmath>
#include <vector>

using namespace am;
using namespace am::test;

using NormKind = Backend::NormKind;

TEST_CASE("cpu block_norms: hand-computed L2, L1 and Linf, other columns untouched", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  const int nb = 3;
  // Two rows of three blocks of 2.
  Tensor c = ar.f({2, 6});
  const std::vector<double> cv = {3, 4, 0, 0, -1, 2, /**/ -3, -4, 1, 1, 0, -5};
  std::copy(cv.begin(), cv.end(), d64(c));
  struct Want {
    NormKind kind;
    std::vector<double> s;
  };
  const double r5 = std::sqrt(5.0), r2 = std::sqrt(2.0);
  for (const Want& w : {Want{NormKind::L2, {5, 0, r5, 5, r2, 5}}, Want{NormKind::L1, {7, 0, 3, 7, 2, 5}},
                        Want{NormKind::Linf, {4, 0, 2, 4, 1, 5}}}) {
    INFO("kind " << int(w.kind));
    Tensor s = ar.f({2, 5});
    for (int64_t i = 0; i < 10; ++i) d64(s)[i] = 42.0;
    be.block_norms(s, c, nb, w.kind);
    for (int64_t t = 0; t < 2; ++t) {
      for (int b = 0; b < nb; ++b) CHECK(d64(s)[t * 5 + b] == Approx(w.s[t * nb + b]).epsilon(1e-15));
      CHECK(d64(s)[t * 5 + 3] == 42.0);
      CHECK(d64(s)[t * 5 + 4] == 42.0);
    }
  }
  CHECK_THROWS_AS(be.block_norms(ar.f({2, 5}), c, 4, NormKind::L2), InternalError);   // 6 % 4
  CHECK_THROWS_AS(be.block_norms(ar.f({2, 2}), c, nb, NormKind::L2), InternalError);  // S < nb
}

TEST_CASE("cpu block_norms: gradients (L2, L1, Linf) by finite differences", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(90);
  const int64_t N = 3, nb = 4, dl = 5, S = 6;
  // Entries away from 0 (L1's kink) and, per block, a clear largest |c| (Linf's switch).
  Tensor c = ar.randn({N, nb * dl}, rng);
  for (int64_t i = 0; i < c.numel(); ++i) {
    double& v = d64(c)[i];
    v = (v < 0 ? -0.2 : 0.2) + 0.8 * v;
  }
  for (int64_t blk = 0; blk < N * nb; ++blk) d64(c)[blk * dl + blk % dl] *= 4.0;
  Tensor R = ar.randn({N, S}, rng), s = ar.f({N, S});
  for (const NormKind kind : {NormKind::L2, NormKind::L1, NormKind::Linf}) {
    INFO("kind " << int(kind));
    be.block_norms(s, c, int(nb), kind);
    Tensor dc0 = ar.randn({N, nb * dl}, rng), dc = ar.clone(dc0);  // "acc"
    be.block_norms_backward(dc, R, c, s, int(nb), kind);
    be.axpy(dc, dc0, -1.0);
    auto loss = [&] {
      be.block_norms(s, c, int(nb), kind);
      return weighted_sum(R, s);  // columns nb.. of s are constant
    };
    check_gradient(loss, d64(c), d64(dc), c.numel(), {.max_entries = 0, .what = "block_norms dc"});
  }
}

TEST_CASE("cpu block_norms_backward: zero blocks and the Linf tie rule", "[cpu]") {
  CpuBackend be(DType::F64, 1);
  Arena ar(be);
  // One row, blocks of 4: a zero block, a block whose largest |c| appears twice (first at index
  // 1, negative), and a block with zeros (L1: sign 0 there).
  Tensor c = ar.f({1, 12}), s = ar.f({1, 3}), ds = ar.f({1, 3}), dc = ar.f({1, 12});
  const std::vector<double> cv = {0, 0, 0, 0, /**/ 2, -5, 5, 1, /**/ 0, 3, 0, -4};
  std::copy(cv.begin(), cv.end(), d64(c));
  const std::vector<double> g = {0.7, 2.0, -1.5};
  std::copy(g.begin(), g.end(), d64(ds));
  auto run = [&](NormKind kind) {
    be.block_norms(s, c, 3, kind);
    be.zero(dc);
    be.block_norms_backward(dc, ds, c, s, 3, kind);
    return to_vector(dc);
  };
  const std::vector<double> l2 = run(NormKind::L2);
  const double n1 = std::sqrt(55.0);
  const std::vector<double> want_l2 = {
      0, 0, 0, 0, 2 * 2 / n1, -5 * 2 / n1, 5 * 2 / n1, 1 * 2 / n1, 0, -1.5 * 3 / 5, 0, -1.5 * -4 / 5};
  for (size_t i = 0; i < 12; ++i) CHECK(l2[i] == Approx(want_l2[i]).epsilon(1e-14));
  CHECK(run(NormKind::L1) == std::vector<double>{0, 0, 0, 0, 2, -2, 2, 2, 0, -1.5, 0, 1.5});
  CHECK(run(NormKind::Linf) == std::vector<double>{0, 0, 0, 0, 0, -2, 0, 0, 0, 0, 0, 1.5});
}

namespace {

// A slot array with empty slots and its expert-major assignment list (from route_build).
struct Slots {
  static constexpr int64_t N = 5, kmax = 2, n = 3, dl = 4;
  Tensor slot_expert, slot_assign, assign_slot;
  std::vector<int64_t> off;
  int64_t A = 0;
  Slots(Backend& be, Arena& ar) {
    slot_expert = ar.i32({N, kmax}, {2, 0, -1, 1, 1, 2, -1, -1, 0, 2});
    slot_assign = ar.i32({N, kmax});
    assign_slot = ar.i32({N * kmax});
    A = be.route_build(assign_slot, slot_assign, off, slot_expert, int(n));
  }
};

}  // namespace

TEST_CASE("cpu gather_blocks / scatter_blocks_add: forward and adjointness", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(91);
  Slots sl(be, ar);
  const int64_t N = sl.N, kmax = sl.kmax, n = sl.n, dl = sl.dl, A = sl.A;
  REQUIRE(A == 7);
  Tensor c = ar.randn({N, n * dl}, rng), out = ar.f({A, dl});
  be.gather_blocks(out, c, sl.assign_slot, sl.slot_expert);
  for (int64_t a = 0; a < A; ++a) {
    const int32_t slot = i32p(sl.assign_slot)[a];
    const int64_t t = slot / kmax, e = i32p(sl.slot_expert)[slot];
    for (int64_t i = 0; i < dl; ++i) CHECK(d64(out)[a * dl + i] == d64(c)[(t * n + e) * dl + i]);
  }
  // <gather(c), r> == <c, scatter(r)>.
  Tensor r = ar.randn({A, dl}, rng), dc = ar.f({N, n * dl});
  be.scatter_blocks_add(dc, r, sl.assign_slot, sl.slot_expert);
  CHECK(weighted_sum(out, r) == Approx(weighted_sum(c, dc)).epsilon(1e-14));
  // Blocks no assignment names get nothing: row 3 (empty) and expert 1 of rows 0 and 4.
  for (int64_t i = 0; i < n * dl; ++i) CHECK(d64(dc)[3 * n * dl + i] == 0.0);
  for (int64_t i = 0; i < dl; ++i) {
    CHECK(d64(dc)[(0 * n + 1) * dl + i] == 0.0);
    CHECK(d64(dc)[(4 * n + 1) * dl + i] == 0.0);
  }
  // "acc": on top of what dc held.
  Tensor dc0 = ar.randn({N, n * dl}, rng), dc2 = ar.clone(dc0);
  be.scatter_blocks_add(dc2, r, sl.assign_slot, sl.slot_expert);
  for (int64_t i = 0; i < N * n * dl; ++i) CHECK(d64(dc2)[i] == d64(dc0)[i] + d64(dc)[i]);
  // Two assignments naming one block both land there.
  Tensor twice = ar.i32({2}, {4, 4});  // slot 4 = row 2, expert 1
  Tensor src = ar.randn({2, dl}, rng), acc = ar.f({N, n * dl});
  be.scatter_blocks_add(acc, src, twice, sl.slot_expert);
  for (int64_t i = 0; i < dl; ++i) CHECK(d64(acc)[(2 * n + 1) * dl + i] == Approx(d64(src)[i] + d64(src)[dl + i]));
  // An assignment naming an empty slot is a bug.
  CHECK_THROWS_AS(be.gather_blocks(ar.f({1, dl}), c, ar.i32({1}, {2}), sl.slot_expert), InternalError);
}

TEST_CASE("cpu broadcast_columns / copy_columns write only their columns", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(92);
  const int64_t N = 4, C = 7;
  Tensor x = ar.f({N, C}), v = ar.randn({2}, rng), src = ar.randn({N, 3}, rng);
  for (int64_t i = 0; i < N * C; ++i) d64(x)[i] = -9.0;
  be.broadcast_columns(x, v, 5);
  be.copy_columns(x, src, 1);
  for (int64_t t = 0; t < N; ++t)
    for (int64_t j = 0; j < C; ++j) {
      INFO("row " << t << " column " << j);
      double want = -9.0;
      if (j >= 5) want = d64(v)[j - 5];
      if (j >= 1 && j < 4) want = d64(src)[t * 3 + j - 1];
      CHECK(d64(x)[t * C + j] == want);
    }
  CHECK_THROWS_AS(be.broadcast_columns(x, v, 6), InternalError);
  CHECK_THROWS_AS(be.copy_columns(x, src, 5), InternalError);
  CHECK_THROWS_AS(be.copy_columns(x, ar.f({N + 1, 2}), 0), InternalError);
}

TEST_CASE("cpu entropy_sum: value with 0 log 0 = 0, gradient, and after a softmax", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(93);
  // Hand values: a uniform row of 4 has entropy log 4; (1, 0, 0, 0) has 0; (0.5, 0.5, 0, 0) log 2.
  Tensor hp = ar.f({3, 4});
  const std::vector<double> hv = {0.25, 0.25, 0.25, 0.25, 1, 0, 0, 0, 0.5, 0.5, 0, 0};
  std::copy(hv.begin(), hv.end(), d64(hp));
  CHECK(be.entropy_sum(hp) == Approx(std::log(4.0) + std::log(2.0)).epsilon(1e-15));
  // p > 0 entries get -scale (log p + 1) on top of dp; zero entries keep dp.
  Tensor hdp = ar.f({3, 4});
  be.entropy_backward(hdp, hp, 2.0);
  CHECK(d64(hdp)[0] == Approx(-2.0 * (std::log(0.25) + 1)));
  CHECK(d64(hdp)[4] == -2.0);
  CHECK(d64(hdp)[5] == 0.0);

  const int64_t N = 5, n = 6;
  const double scale = 0.7;
  SECTION("with respect to p") {
    Tensor p = ar.f({N, n});
    std::uniform_real_distribution<double> u(0.05, 1.0);
    for (int64_t i = 0; i < N * n; ++i) d64(p)[i] = u(rng);
    auto loss = [&] { return scale * be.entropy_sum(p); };
    Tensor dp = ar.f({N, n});
    be.entropy_backward(dp, p, scale);
    check_gradient(loss, d64(p), d64(dp), p.numel(), {.what = "entropy dp"});
  }
  SECTION("softmax -> entropy, with respect to the logits") {
    Tensor z = ar.randn({N, n}, rng, 1.5), p = ar.f({N, n});
    auto loss = [&] {
      be.softmax_rows(p, z);
      return scale * be.entropy_sum(p);
    };
    loss();
    Tensor dp = ar.f({N, n}), dz = ar.f({N, n});
    be.entropy_backward(dp, p, scale);
    be.softmax_rows_backward(dz, dp, p);
    check_gradient(loss, d64(z), d64(dz), z.numel(), {.what = "softmax entropy dz"});
    // A uniform row (equal logits) has entropy log n.
    Tensor flat = ar.f({1, n}), pf = ar.f({1, n});
    be.softmax_rows(pf, flat);
    CHECK(be.entropy_sum(pf) == Approx(std::log(double(n))).epsilon(1e-15));
  }
}
