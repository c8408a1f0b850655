// CPU backend: top-k selection (order, tie-break, gates, gradient on a fixed selection),
// route_build invariants, the slot-id check of the selection backwards, and gather_rows /
// combine / scatter_rows_add with their gradients.
#include "test_cpu_util.h"

#include "cpu/ops_select.h"
#include "cpu/ops_topk.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace am;
using namespace am::test;

TEST_CASE("cpu topk: k largest in descending order, ties to the lower index, gates sum to 1", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(40);
  const int64_t N = 50, n = 7;
  const int k = 3;
  Tensor scores = ar.f({N, n});
  // Scores on a coarse grid so that ties are frequent.
  std::uniform_int_distribution<int> grid(0, 4);
  for (int64_t i = 0; i < N * n; ++i) d64(scores)[i] = 0.5 * grid(rng);
  for (int64_t j = 0; j < n; ++j) d64(scores)[j] = 1.0;  // row 0: all tied -> 0, 1, 2
  Tensor ex = ar.i32({N, k}), gate = ar.f({N, k});
  be.topk_select(ex, gate, scores, scores, k, int(n));
  for (int64_t t = 0; t < N; ++t) {
    const double* s = d64(scores) + t * n;
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[a] > s[b]; });
    double z = 0, gsum = 0;
    for (int j = 0; j < k; ++j) z += std::exp(s[order[j]]);
    for (int j = 0; j < k; ++j) {
      INFO("row " << t << " slot " << j);
      CHECK(i32p(ex)[t * k + j] == order[j]);
      CHECK(d64(gate)[t * k + j] == Approx(std::exp(s[order[j]]) / z).epsilon(1e-14));
      gsum += d64(gate)[t * k + j];
    }
    CHECK(gsum == Approx(1.0).epsilon(1e-15));
  }
  CHECK(i32p(ex)[0] == 0);
  CHECK(i32p(ex)[1] == 1);
  CHECK(i32p(ex)[2] == 2);
  CHECK_THROWS_AS(be.topk_select(ar.i32({N, 8}), ar.f({N, 8}), scores, scores, 8, int(n)), InternalError);
}

TEST_CASE("cpu topk: gradient of the gates with respect to the scores (fixed selection)", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(41);
  const int64_t N = 6, n = 8;
  const int k = 3;
  // Each row is a permutation of 0, 0.3, ..., 2.1 (+ a row offset): gaps of 0.3 >> eps, so the
  // finite differences never change which experts are selected.
  Tensor scores = ar.f({N, n}), R = ar.randn({N, k}, rng);
  for (int64_t t = 0; t < N; ++t) {
    std::vector<int> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int64_t j = 0; j < n; ++j) d64(scores)[t * n + j] = 0.3 * perm[j] + 0.1 * t;
  }
  Tensor ex = ar.i32({N, k}), gate = ar.f({N, k});
  be.topk_select(ex, gate, scores, scores, k, int(n));
  const std::vector<int32_t> chosen(i32p(ex), i32p(ex) + N * k);
  auto loss = [&] {
    be.topk_select(ex, gate, scores, scores, k, int(n));
    return weighted_sum(R, gate);
  };
  Tensor dscores = ar.f({N, n});
  be.topk_select_backward(dscores, R, ex, gate, int(n));
  check_gradient(loss, d64(scores), d64(dscores), scores.numel(), {.max_entries = 0, .what = "topk dscores"});
  CHECK(std::equal(chosen.begin(), chosen.end(), i32p(ex)));
  // Unselected experts get no gradient.
  for (int64_t t = 0; t < N; ++t)
    for (int64_t e = 0; e < n; ++e) {
      const bool sel =
          std::find(chosen.begin() + t * k, chosen.begin() + (t + 1) * k, e) != chosen.begin() + (t + 1) * k;
      if (!sel) CHECK(d64(dscores)[t * n + e] == 0.0);
    }
}

namespace {

// Checks every documented invariant of route_build's outputs.
void check_route(const std::vector<int32_t>& slot_expert, int64_t N, int64_t kmax, int n_experts,
                 const int32_t* assign_slot, const int32_t* slot_assign, const std::vector<int64_t>& off, int64_t A) {
  REQUIRE(off.size() == size_t(n_experts + 1));
  CHECK(off[0] == 0);
  CHECK(off[n_experts] == A);
  for (int e = 0; e < n_experts; ++e) {
    const int64_t count = std::count(slot_expert.begin(), slot_expert.end(), e);
    CHECK(off[e + 1] - off[e] == count);
    for (int64_t a = off[e]; a < off[e + 1]; ++a) {
      INFO("expert " << e << " assignment " << a);
      CHECK(slot_expert[assign_slot[a]] == e);                     // expert-major
      if (a > off[e]) CHECK(assign_slot[a] > assign_slot[a - 1]);  // slot order within an expert
    }
  }
  std::vector<int> seen(size_t(N * kmax), 0);
  for (int64_t a = 0; a < A; ++a) {
    REQUIRE(assign_slot[a] >= 0);
    REQUIRE(assign_slot[a] < N * kmax);
    ++seen[assign_slot[a]];
    CHECK(slot_assign[assign_slot[a]] == a);  // slot_assign is the inverse
  }
  for (int64_t i = 0; i < N * kmax; ++i) {
    INFO("slot " << i);
    CHECK(seen[i] == (slot_expert[i] >= 0 ? 1 : 0));  // every filled slot exactly once
    if (slot_expert[i] < 0) CHECK(slot_assign[i] == -1);
  }
}

}  // namespace

TEST_CASE("cpu route_build: stable expert-major sort, inverse map, empty slots and experts", "[cpu]") {
  CpuBackend be(DType::F64, 1);
  Arena ar(be);
  std::mt19937_64 rng(42);
  const int64_t N = 20, kmax = 3;
  const int n = 5;
  std::vector<int32_t> se(size_t(N * kmax));
  std::uniform_int_distribution<int> pick(-1, n - 1);
  for (auto& e : se) {
    do e = pick(rng);
    while (e == 2);  // expert 2 receives no token; -1 = empty slot
  }
  Tensor slot_expert = ar.i32({N, kmax}, se), slot_assign = ar.i32({N, kmax});
  Tensor assign_slot = ar.i32({N * kmax + 1});
  for (int64_t i = 0; i < N * kmax + 1; ++i) i32p(assign_slot)[i] = -7;  // sentinel
  std::vector<int64_t> off;
  const int64_t A = be.route_build(assign_slot, slot_assign, off, slot_expert, n);
  CHECK(A == N * kmax - std::count(se.begin(), se.end(), -1));
  CHECK(off[2] == off[3]);
  check_route(se, N, kmax, n, i32p(assign_slot), i32p(slot_assign), off, A);
  for (int64_t i = A; i < N * kmax + 1; ++i) CHECK(i32p(assign_slot)[i] == -7);  // untouched

  // All tokens to one expert: the list is the identity, the other experts are empty.
  std::vector<int32_t> all3(size_t(N * kmax), 3);
  Tensor se3 = ar.i32({N, kmax}, all3);
  const int64_t A3 = be.route_build(assign_slot, slot_assign, off, se3, n);
  CHECK(A3 == N * kmax);
  CHECK(off == std::vector<int64_t>{0, 0, 0, 0, N * kmax, N * kmax});
  for (int64_t a = 0; a < A3; ++a) CHECK(i32p(assign_slot)[a] == a);
  check_route(all3, N, kmax, n, i32p(assign_slot), i32p(slot_assign), off, A3);

  // Errors: an expert id out of range, a list that does not fit.
  std::vector<int32_t> bad = all3;
  bad[4] = n;
  CHECK_THROWS_AS(be.route_build(assign_slot, slot_assign, off, ar.i32({N, kmax}, bad), n), InternalError);
  CHECK_THROWS_AS(be.route_build(ar.i32({N}), slot_assign, off, se3, n), InternalError);
}

namespace {

// A routed batch: N tokens, kmax slots, some empty (token 2 has no slot at all).
struct Routed {
  static constexpr int64_t N = 6, kmax = 2, d = 4;
  static constexpr int n = 3;
  Tensor slot_expert, slot_assign, assign_slot, slot_gate;
  std::vector<int64_t> off;
  int64_t A = 0;
  Routed(Backend& be, Arena& ar, std::mt19937_64& rng) {
    slot_expert = ar.i32({N, kmax}, {1, 0, 2, -1, -1, -1, 0, 1, 1, 2, -1, 2});
    slot_assign = ar.i32({N, kmax});
    assign_slot = ar.i32({N * kmax});
    A = be.route_build(assign_slot, slot_assign, off, slot_expert, n);
    slot_gate = ar.randn({N, kmax}, rng);
  }
};

}  // namespace

TEST_CASE("cpu gather/combine/scatter: forward semantics, an all-empty row combines to 0", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(43);
  Routed r(be, ar, rng);
  const int64_t N = r.N, d = r.d, kmax = r.kmax, A = r.A;
  REQUIRE(A == 8);
  Tensor x = ar.randn({N, d}, rng), xa = ar.f({A, d});
  be.gather_rows(xa, x, r.assign_slot, int(kmax));
  for (int64_t a = 0; a < A; ++a)
    for (int64_t c = 0; c < d; ++c) CHECK(d64(xa)[a * d + c] == d64(x)[(i32p(r.assign_slot)[a] / kmax) * d + c]);

  Tensor eo = ar.randn({A, d}, rng), y = ar.f({N, d});
  for (int64_t i = 0; i < N * d; ++i) d64(y)[i] = NAN;
  be.combine(y, eo, r.slot_gate, r.slot_assign);
  for (int64_t t = 0; t < N; ++t)
    for (int64_t c = 0; c < d; ++c) {
      double want = 0;
      for (int64_t j = 0; j < kmax; ++j) {
        const int32_t a = i32p(r.slot_assign)[t * kmax + j];
        if (a >= 0) want += d64(r.slot_gate)[t * kmax + j] * d64(eo)[a * d + c];
      }
      CHECK(d64(y)[t * d + c] == Approx(want).epsilon(1e-14));
    }
  for (int64_t c = 0; c < d; ++c) CHECK(d64(y)[2 * d + c] == 0.0);  // token 2: no filled slot

  Tensor dx = ar.randn({N, d}, rng);
  const std::vector<double> dx0 = to_vector(dx);
  be.scatter_rows_add(dx, eo, r.slot_assign);
  for (int64_t t = 0; t < N; ++t)
    for (int64_t c = 0; c < d; ++c) {
      double want = dx0[t * d + c];
      for (int64_t j = 0; j < kmax; ++j) {
        const int32_t a = i32p(r.slot_assign)[t * kmax + j];
        if (a >= 0) want += d64(eo)[a * d + c];
      }
      CHECK(d64(dx)[t * d + c] == Approx(want).epsilon(1e-14));
    }
}

TEST_CASE("cpu combine: gradients with respect to expert_out and slot_gate", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(44);
  Routed r(be, ar, rng);
  const int64_t N = r.N, d = r.d, kmax = r.kmax, A = r.A;
  Tensor eo = ar.randn({A, d}, rng), y = ar.f({N, d}), R = ar.randn({N, d}, rng);
  auto loss = [&] {
    be.combine(y, eo, r.slot_gate, r.slot_assign);
    return weighted_sum(R, y);
  };
  Tensor deo = ar.f({A, d}), dgate = ar.f({N, kmax});
  for (int64_t i = 0; i < N * kmax; ++i) d64(dgate)[i] = NAN;  // "write", empty slots too
  be.combine_backward(deo, dgate, R, eo, r.slot_gate, r.slot_assign);
  check_gradient(loss, d64(eo), d64(deo), eo.numel(), {.what = "combine dexpert_out"});
  check_gradient(loss, d64(r.slot_gate), d64(dgate), N * kmax, {.what = "combine dslot_gate"});
  // A dexpert_out with a row that no slot owns is a caller bug.
  CHECK_THROWS_AS(be.combine_backward(ar.f({A + 1, d}), dgate, R, ar.f({A + 1, d}), r.slot_gate, r.slot_assign),
                  InternalError);
}

TEST_CASE("cpu gather_rows and scatter_rows_add: gradients (each is the other's adjoint)", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(45);
  Routed r(be, ar, rng);
  const int64_t N = r.N, d = r.d, kmax = r.kmax, A = r.A;
  Tensor x = ar.randn({N, d}, rng), xa = ar.f({A, d}), Ra = ar.randn({A, d}, rng);
  auto gather_loss = [&] {
    be.gather_rows(xa, x, r.assign_slot, int(kmax));
    return weighted_sum(Ra, xa);
  };
  Tensor dx = ar.f({N, d});
  be.scatter_rows_add(dx, Ra, r.slot_assign);
  check_gradient(gather_loss, d64(x), d64(dx), x.numel(), {.what = "gather_rows dx"});

  Tensor src = ar.randn({A, d}, rng), acc = ar.f({N, d}), Rn = ar.randn({N, d}, rng);
  auto scatter_loss = [&] {
    be.zero(acc);
    be.scatter_rows_add(acc, src, r.slot_assign);
    return weighted_sum(Rn, acc);
  };
  Tensor dsrc = ar.f({A, d});
  be.gather_rows(dsrc, Rn, r.assign_slot, int(kmax));
  check_gradient(scatter_loss, d64(src), d64(dsrc), src.numel(), {.what = "scatter_rows_add dsrc"});
}

TEST_CASE("cpu topk and topp backwards: a slot holding an id below -1 or at least n is an error", "[cpu]") {
  const int64_t N = 2, k = 2, n = 3;
  std::vector<double> dscores(size_t(N * n)), dgate(size_t(N * k), 1.0), gate(size_t(N * k), 0.5),
      probs(size_t(N * n), 0.25);
  for (int32_t bad : {-2, int32_t(n)}) {
    const std::vector<int32_t> se = {0, -1, bad, 1};
    CHECK_THROWS_AS(cpu::topk_select_backward(dscores.data(), dgate.data(), se.data(), gate.data(), N, n, k, n),
                    InternalError);
    CHECK_THROWS_AS(
        cpu::topp_select_backward(dscores.data(), dgate.data(), se.data(), gate.data(), probs.data(), N, n, k, true),
        InternalError);
  }
  const std::vector<int32_t> good = {0, -1, 2, 1};
  cpu::topk_select_backward(dscores.data(), dgate.data(), good.data(), gate.data(), N, n, k, n);
  cpu::topp_select_backward(dscores.data(), dgate.data(), good.data(), gate.data(), probs.data(), N, n, k, true);
  CHECK(std::all_of(dscores.begin(), dscores.end(), [](double v) { return std::isfinite(v); }));
}
