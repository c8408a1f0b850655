// CPU backend: expert selection. Top-k with null experts and separate rank / gate scores, top-p,
// expert choice, capacity_route and slot_stats: each against expectations computed here from
// scratch (stable sorts, explicit sums), and the gates' gradients by finite differences on a
// fixed selection. Thread-count invariance is in test_cpu_determinism.cpp.
#include "test_cpu_util.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace am;
using namespace am::test;

namespace {

// Ids of row r (n entries) in preference order: higher first, ties to the lower id.
std::vector<int> ranked(const double* r, int64_t n) {
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return r[a] > r[b]; });
  return order;
}

// Checks top-k slots against the definition: the k largest rank scores, null ids with gate 0,
// true ids with the softmax of the gate scores over the selected true ids.
void check_topk(const Tensor& rank, const Tensor& gs, const Tensor& ex, const Tensor& gate, int64_t k, int n_true) {
  const int64_t N = rank.dim(0), n = rank.dim(1);
  for (int64_t t = 0; t < N; ++t) {
    const std::vector<int> order = ranked(d64(rank) + t * n, n);
    const double* s = d64(gs) + t * n;
    double z = 0;
    int n_sel_true = 0;
    for (int64_t j = 0; j < k; ++j) {
      if (order[j] < n_true) {
        z += std::exp(s[order[j]]);
        ++n_sel_true;
      }
    }
    double true_sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      INFO("row " << t << " slot " << j);
      const int e = order[j];
      REQUIRE(i32p(ex)[t * k + j] == e);
      const double g = d64(gate)[t * k + j];
      if (e >= n_true) {
        CHECK(g == 0.0);
      } else {
        CHECK(g == Approx(std::exp(s[e]) / z).epsilon(1e-13));
        true_sum += g;
      }
    }
    INFO("row " << t);
    if (n_sel_true > 0) {
      CHECK(true_sum == Approx(1.0).epsilon(1e-14));
    } else {
      CHECK(true_sum == 0.0);
    }
  }
}

}  // namespace

TEST_CASE("cpu topk with null experts: k largest over n_total, null gates 0, true gates sum to 1", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(80);
  const int64_t N = 60, n_total = 8, k = 3;
  const int n_true = 5;
  Tensor scores = ar.randn({N, n_total}, rng);
  double* s = d64(scores);
  for (int64_t e = 0; e < n_total; ++e) s[e] = e >= n_true ? 5.0 + e : 0.1 * e;  // row 0: all null
  for (int64_t e = 0; e < n_total; ++e) s[n_total + e] = 1.0;                    // row 1: all tied -> ids 0, 1, 2
  for (int64_t e = 0; e < n_total; ++e) s[2 * n_total + e] = e == 7 ? 3.0 : (e == 2 ? 2.0 : -e);
  Tensor ex = ar.i32({N, k}), gate = ar.f({N, k});
  be.topk_select(ex, gate, scores, scores, k, n_true);
  check_topk(scores, scores, ex, gate, k, n_true);
  CHECK(std::vector<int32_t>(i32p(ex), i32p(ex) + 3) == std::vector<int32_t>{7, 6, 5});
  CHECK(std::vector<int32_t>(i32p(ex) + 3, i32p(ex) + 6) == std::vector<int32_t>{0, 1, 2});
  CHECK(i32p(ex)[6] == 7);                                      // row 2: a null expert first,
  CHECK(d64(gate)[7] == Approx(1.0 / (1.0 + std::exp(-2.0))));  // then 2 and 0 share the mass
  // n_true == n_total is the plain top-k; a k or n_true out of range is a bug.
  be.topk_select(ex, gate, scores, scores, k, int(n_total));
  check_topk(scores, scores, ex, gate, k, int(n_total));
  CHECK_THROWS_AS(be.topk_select(ex, gate, scores, scores, k, 0), InternalError);
  CHECK_THROWS_AS(be.topk_select(ex, gate, scores, scores, k, int(n_total) + 1), InternalError);
}

TEST_CASE("cpu topk: rank_scores choose the experts, gate_scores weigh them", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(81);
  const int64_t N = 40, n_total = 6, k = 2;
  const int n_true = 4;
  // A selection bias that favours experts 3 and 5 (a null one) over what the gates prefer.
  const std::vector<double> bias = {0, -0.5, 0.2, 1.5, 0, 1.0};
  Tensor gs = ar.randn({N, n_total}, rng), rank = ar.f({N, n_total});
  for (int64_t i = 0; i < N * n_total; ++i) d64(rank)[i] = d64(gs)[i] + bias[i % n_total];
  Tensor ex = ar.i32({N, k}), gate = ar.f({N, k});
  be.topk_select(ex, gate, rank, gs, k, n_true);
  check_topk(rank, gs, ex, gate, k, n_true);
  // The bias changed the selection of some row (else this test could not tell rank from gate).
  int differ = 0;
  for (int64_t t = 0; t < N; ++t) {
    const std::vector<int> by_gate = ranked(d64(gs) + t * n_total, n_total);
    differ += by_gate[0] != i32p(ex)[t * k] || by_gate[1] != i32p(ex)[t * k + 1];
  }
  CHECK(differ > 5);
}

TEST_CASE("cpu topk with null experts: gradient of the gates (same and separate rank scores)", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(82);
  const int64_t N = 8, n_total = 7, k = 3;
  const int n_true = 4;
  // Rows are permutations of 0, 0.3, ..., 1.8 (gaps >> eps: the selection cannot change).
  Tensor scores = ar.f({N, n_total}), R = ar.randn({N, k}, rng);
  for (int64_t t = 0; t < N; ++t) {
    std::vector<int> perm(n_total);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int64_t j = 0; j < n_total; ++j) d64(scores)[t * n_total + j] = 0.3 * perm[j] - 0.1 * t;
  }
  for (int64_t e = 0; e < n_total; ++e) d64(scores)[e] = e >= n_true ? 2.0 + 0.3 * e : 0.3 * e;
  Tensor ex = ar.i32({N, k}), gate = ar.f({N, k});

  SECTION("rank_scores == gate_scores (one tensor)") {
    be.topk_select(ex, gate, scores, scores, k, n_true);
    const std::vector<int32_t> chosen(i32p(ex), i32p(ex) + N * k);
    REQUIRE(std::all_of(chosen.begin(), chosen.begin() + k,  // row 0 chose only null experts
                        [&](int32_t e) { return e >= n_true; }));
    auto loss = [&] {
      be.topk_select(ex, gate, scores, scores, k, n_true);
      return weighted_sum(R, gate);
    };
    Tensor ds = ar.f({N, n_total});
    be.topk_select_backward(ds, R, ex, gate, n_true);
    check_gradient(loss, d64(scores), d64(ds), scores.numel(), {.max_entries = 0, .what = "topk null dgate_scores"});
    CHECK(std::equal(chosen.begin(), chosen.end(), i32p(ex)));
    // Only selected true experts get a gradient; row 0 (all null) gets none.
    for (int64_t t = 0; t < N; ++t)
      for (int64_t e = 0; e < n_total; ++e) {
        const bool sel =
            std::find(chosen.begin() + t * k, chosen.begin() + (t + 1) * k, e) != chosen.begin() + (t + 1) * k;
        if (!sel || e >= n_true) CHECK(d64(ds)[t * n_total + e] == 0.0);
      }
  }
  SECTION("separate gate_scores (selection bias)") {
    Tensor gs = ar.randn({N, n_total}, rng);
    be.topk_select(ex, gate, scores, gs, k, n_true);
    auto loss = [&] {
      be.topk_select(ex, gate, scores, gs, k, n_true);
      return weighted_sum(R, gate);
    };
    Tensor dgs = ar.randn({N, n_total}, rng);  // "acc": start from something
    const std::vector<double> dgs0 = to_vector(dgs);
    be.topk_select_backward(dgs, R, ex, gate, n_true);
    for (int64_t i = 0; i < N * n_total; ++i) d64(dgs)[i] -= dgs0[i];
    check_gradient(loss, d64(gs), d64(dgs), gs.numel(), {.max_entries = 0, .what = "topk biased dgate_scores"});
  }
}

TEST_CASE("cpu topp: the minimal prefix reaching p, kmax cap, raw and renormalised gates", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(83);
  const int64_t N = 80, n = 8;
  Tensor z = ar.randn({N, n}, rng, 1.5), probs = ar.f({N, n});
  be.softmax_rows(probs, z);
  for (int64_t e = 0; e < n; ++e) d64(probs)[e] = 1.0 / n;  // row 0: uniform, exact sums
  const double p = 0.6;
  for (const int64_t kmax : {n, int64_t(2)}) {
    for (const bool renorm : {false, true}) {
      INFO("kmax " << kmax << " renormalize " << renorm);
      Tensor ex = ar.i32({N, kmax}), gate = ar.f({N, kmax});
      be.topp_select(ex, gate, probs, p, renorm);
      for (int64_t t = 0; t < N; ++t) {
        INFO("row " << t);
        const double* pr = d64(probs) + t * n;
        const std::vector<int> order = ranked(pr, n);
        int64_t m = 0;
        double before = 0, kept = 0;  // the sum of all but the last kept, and of all kept
        while (m < kmax && !(kept >= p)) {
          before = kept;
          kept += pr[order[m++]];
        }
        for (int64_t j = 0; j < kmax; ++j) {
          const int32_t e = i32p(ex)[t * kmax + j];
          const double g = d64(gate)[t * kmax + j];
          if (j >= m) {
            CHECK(e == -1);
            CHECK(g == 0.0);
            continue;
          }
          REQUIRE(e == order[j]);
          if (renorm) {
            CHECK(g == Approx(pr[e] / kept).epsilon(1e-14));
          } else {
            CHECK(g == pr[e]);  // raw gates are the probabilities themselves
          }
        }
        if (m < kmax) {  // not capped: a minimal prefix
          CHECK(before < p);
          CHECK(p <= kept);
        }
      }
      const std::vector<int32_t> row0(i32p(ex), i32p(ex) + kmax);
      if (kmax == n) {  // 4/8 < 0.6 <= 5/8: ids 0..4 by the tie rule
        CHECK(row0 == std::vector<int32_t>{0, 1, 2, 3, 4, -1, -1, -1});
      } else {
        CHECK(row0 == std::vector<int32_t>{0, 1});
      }
    }
  }
  // A prefix that reaches p exactly stops there: 0.5 + 0.25 == 0.75 (exact binary fractions).
  Tensor exact = ar.f({1, 4}), ex1 = ar.i32({1, 4}), gate1 = ar.f({1, 4});
  const double ev[4] = {0.125, 0.25, 0.125, 0.5};
  std::copy(ev, ev + 4, d64(exact));
  be.topp_select(ex1, gate1, exact, 0.75, false);
  CHECK(std::vector<int32_t>(i32p(ex1), i32p(ex1) + 4) == std::vector<int32_t>{3, 1, -1, -1});
  be.topp_select(ex1, gate1, exact, 0.875, false);  // then the tie 0 / 2 goes to the lower id
  CHECK(std::vector<int32_t>(i32p(ex1), i32p(ex1) + 4) == std::vector<int32_t>{3, 1, 0, -1});
  Tensor ex = ar.i32({N, 2}), gate = ar.f({N, 2});
  CHECK_THROWS_AS(be.topp_select(ex, gate, probs, 0.0, false), InternalError);
  CHECK_THROWS_AS(be.topp_select(ex, gate, probs, 1.5, false), InternalError);
}

TEST_CASE("cpu topp: gradient of raw and renormalised gates on a fixed selection", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(84);
  const int64_t N = 6, n = 8;
  // Each row a permutation of these values (sum 1); with p = 0.6 the prefix sums are 0.30, 0.52,
  // 0.68 and with p = 0.85 ..., 0.80, 0.89: every threshold is >= 0.04 away, ties none.
  const double vals[n] = {0.30, 0.22, 0.16, 0.12, 0.09, 0.06, 0.03, 0.02};
  Tensor probs = ar.f({N, n});
  for (int64_t t = 0; t < N; ++t) {
    std::vector<int> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int64_t j = 0; j < n; ++j) d64(probs)[t * n + j] = vals[perm[j]];
  }
  struct Case {
    double p;
    int64_t kmax;
    bool renorm;
    int64_t kept;
  };
  for (const Case c :
       {Case{0.6, n, false, 3}, Case{0.6, n, true, 3}, Case{0.85, 4, true, 4}, Case{0.85, 4, false, 4}}) {
    INFO("p " << c.p << " kmax " << c.kmax << " renormalize " << c.renorm);
    Tensor ex = ar.i32({N, c.kmax}), gate = ar.f({N, c.kmax}), R = ar.randn({N, c.kmax}, rng);
    be.topp_select(ex, gate, probs, c.p, c.renorm);
    const std::vector<int32_t> chosen(i32p(ex), i32p(ex) + N * c.kmax);
    for (int64_t t = 0; t < N; ++t)
      CHECK(std::count(chosen.begin() + t * c.kmax, chosen.begin() + (t + 1) * c.kmax, -1) == c.kmax - c.kept);
    auto loss = [&] {
      be.topp_select(ex, gate, probs, c.p, c.renorm);
      return weighted_sum(R, gate);
    };
    Tensor dprobs = ar.f({N, n});
    be.topp_select_backward(dprobs, R, ex, gate, probs, c.renorm);
    check_gradient(loss, d64(probs), d64(dprobs), probs.numel(), {.max_entries = 0, .what = "topp dprobs"});
    CHECK(std::equal(chosen.begin(), chosen.end(), i32p(ex)));
  }
}

namespace {

// Expert choice against the definition: per group and expert, the `cap` largest probs (ties:
// lower row) are filled with gate = probs, every other entry is -1 with gate 0.
void check_expert_choice(const Tensor& probs, const Tensor& ex, const Tensor& gate, int64_t group, int64_t cap) {
  const int64_t N = probs.dim(0), n = probs.dim(1);
  for (int64_t g0 = 0; g0 < N; g0 += group)
    for (int64_t e = 0; e < n; ++e) {
      std::vector<double> col(static_cast<size_t>(group));
      for (int64_t i = 0; i < group; ++i) col[i] = d64(probs)[(g0 + i) * n + e];
      const std::vector<int> order = ranked(col.data(), group);
      std::vector<char> want(static_cast<size_t>(group), 0);
      for (int64_t i = 0; i < cap; ++i) want[order[i]] = 1;
      int64_t filled = 0;
      for (int64_t i = 0; i < group; ++i) {
        INFO("group at row " << g0 << ", expert " << e << ", row " << g0 + i);
        const int64_t at = (g0 + i) * n + e;
        CHECK(i32p(ex)[at] == (want[i] ? e : -1));
        CHECK(d64(gate)[at] == (want[i] ? d64(probs)[at] : 0.0));
        filled += i32p(ex)[at] >= 0;
      }
      CHECK(filled == cap);
    }
}

}  // namespace

TEST_CASE("cpu expert choice: capacity tokens per expert and group, the largest probs", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(85);
  const int64_t B = 3, T = 8, N = B * T, n = 4, cap = 3;
  Tensor z = ar.f({N, n}), probs = ar.f({N, n});
  std::uniform_int_distribution<int> grid(0, 3);  // coarse: many ties within a column
  for (int64_t i = 0; i < N * n; ++i) d64(z)[i] = 0.5 * grid(rng);
  be.softmax_rows(probs, z);
  for (int64_t i = 0; i < T * n; ++i) d64(probs)[i] = 0.25;  // sequence 0: all tied
  Tensor ex = ar.i32({N, n}), gate = ar.f({N, n});
  for (const int64_t group : {T, N}) {
    INFO("group " << group);
    be.expert_choice_select(ex, gate, probs, group, cap);
    check_expert_choice(probs, ex, gate, group, cap);
  }
  // group = T: each sequence on its own. Sequence 0 (all tied) -> rows 0..2 for every expert,
  // and changing sequence 1 does not move sequence 0.
  be.expert_choice_select(ex, gate, probs, T, cap);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t e = 0; e < n; ++e) CHECK(i32p(ex)[t * n + e] == (t < cap ? e : -1));
  const std::vector<int32_t> seq0(i32p(ex), i32p(ex) + T * n);
  for (int64_t i = T * n; i < 2 * T * n; ++i) d64(probs)[i] = 1.0 - d64(probs)[i];
  be.expert_choice_select(ex, gate, probs, T, cap);
  CHECK(std::equal(seq0.begin(), seq0.end(), i32p(ex)));
  check_expert_choice(probs, ex, gate, T, cap);
  // Capacity = group keeps everything; bad geometry is a bug.
  be.expert_choice_select(ex, gate, probs, T, T);
  CHECK(std::count(i32p(ex), i32p(ex) + N * n, -1) == 0);
  CHECK_THROWS_AS(be.expert_choice_select(ex, gate, probs, T, T + 1), InternalError);
  CHECK_THROWS_AS(be.expert_choice_select(ex, gate, probs, 5, 2), InternalError);
}

TEST_CASE("cpu expert choice: gradient of the gates with respect to probs", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(86);
  const int64_t N = 12, n = 3, group = 6, cap = 2;
  Tensor z = ar.randn({N, n}, rng, 2.0), probs = ar.f({N, n}), R = ar.randn({N, n}, rng);
  be.softmax_rows(probs, z);
  Tensor ex = ar.i32({N, n}), gate = ar.f({N, n});
  be.expert_choice_select(ex, gate, probs, group, cap);
  const std::vector<int32_t> chosen(i32p(ex), i32p(ex) + N * n);
  auto loss = [&] {
    be.expert_choice_select(ex, gate, probs, group, cap);
    return weighted_sum(R, gate);
  };
  Tensor dprobs = ar.f({N, n});
  be.expert_choice_select_backward(dprobs, R, ex);
  check_gradient(loss, d64(probs), d64(dprobs), probs.numel(), {.max_entries = 0, .what = "expert choice dprobs"});
  CHECK(std::equal(chosen.begin(), chosen.end(), i32p(ex)));
}

namespace {

// capacity_route against the definition, computed with a stable sort per expert.
std::vector<int32_t> expected_route(const std::vector<int32_t>& se, const Tensor& scores, int64_t kmax, int n_true,
                                    int64_t cap) {
  const int64_t n_s = scores.dim(1);
  std::vector<int32_t> out(se.size());
  for (size_t i = 0; i < se.size(); ++i) out[i] = se[i] < n_true ? se[i] : -1;
  if (cap == 0) return out;
  for (int e = 0; e < n_true; ++e) {
    std::vector<int64_t> slots;
    for (size_t i = 0; i < se.size(); ++i)
      if (se[i] == e) slots.push_back(int64_t(i));
    auto score = [&](int64_t s) { return d64(scores)[(s / kmax) * n_s + e]; };
    std::stable_sort(slots.begin(), slots.end(), [&](int64_t a, int64_t b) { return score(a) > score(b); });
    for (size_t i = size_t(cap); i < slots.size(); ++i) out[slots[i]] = -1;
  }
  return out;
}

}  // namespace

TEST_CASE("cpu capacity_route: drops the lowest-scoring assignments beyond capacity, nulls to -1", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(87);
  const int64_t N = 40, kmax = 2, n_total = 6;
  const int n_true = 4;
  std::vector<int32_t> se(size_t(N * kmax));
  std::uniform_int_distribution<int> pick(-1, int(n_total) - 1);
  for (int64_t t = 0; t < N; ++t) {
    se[t * kmax] = pick(rng);
    do se[t * kmax + 1] = pick(rng);
    while (se[t * kmax + 1] >= 0 && se[t * kmax + 1] == se[t * kmax]);
  }
  Tensor slot_expert = ar.i32({N, kmax}, se), routed = ar.i32({N, kmax});
  Tensor scores = ar.f({N, n_total});
  std::uniform_int_distribution<int> grid(0, 4);  // ties: the lower slot index wins
  for (int64_t i = 0; i < N * n_total; ++i) d64(scores)[i] = 0.25 * grid(rng);

  std::vector<int64_t> load(n_true, 0);
  for (int32_t e : se)
    if (e >= 0 && e < n_true) ++load[e];
  const int64_t cap = 5;
  REQUIRE(*std::max_element(load.begin(), load.end()) > cap);  // something must be dropped
  be.capacity_route(routed, slot_expert, scores, n_true, cap);
  const std::vector<int32_t> got(i32p(routed), i32p(routed) + N * kmax);
  CHECK(got == expected_route(se, scores, kmax, n_true, cap));
  for (int e = 0; e < n_true; ++e) {
    INFO("expert " << e);
    CHECK(std::count(got.begin(), got.end(), e) == std::min(load[e], cap));
    double lowest_kept = INFINITY, highest_dropped = -INFINITY;
    for (size_t i = 0; i < se.size(); ++i) {
      if (se[i] != e) continue;
      const double sc = d64(scores)[(i / kmax) * n_total + e];
      if (got[i] == e)
        lowest_kept = std::min(lowest_kept, sc);
      else
        highest_dropped = std::max(highest_dropped, sc);
    }
    CHECK(lowest_kept >= highest_dropped);
  }
  for (size_t i = 0; i < se.size(); ++i) {
    if (se[i] >= n_true) CHECK(got[i] == -1);  // null experts never reach an expert
    if (got[i] >= 0) CHECK(got[i] == se[i]);
  }
  // A capacity at least the largest load, or 0 (no cap): only the null ids go.
  for (const int64_t c : {int64_t(0), N * kmax}) {
    be.capacity_route(routed, slot_expert, scores, n_true, c);
    CHECK(std::vector<int32_t>(i32p(routed), i32p(routed) + N * kmax) == expected_route(se, scores, kmax, n_true, 0));
  }
  CHECK_THROWS_AS(be.capacity_route(routed, slot_expert, scores, n_true, -1), InternalError);
}

TEST_CASE("cpu capacity_route: 1e5 assignments on one expert keep exactly the best `capacity`", "[cpu]") {
  CpuBackend be(DType::F32, 2);
  Arena ar(be);
  const int64_t N = 50000, kmax = 2, cap = 1234;
  std::vector<int32_t> se(size_t(N * kmax), 1);  // every slot on expert 1: the worst case
  Tensor slot_expert = ar.i32({N, kmax}, se), routed = ar.i32({N, kmax}), scores = ar.f({N, 3});
  for (int64_t t = 0; t < N; ++t) scores.as<float>()[t * 3 + 1] = float((t * 7919) % N);
  be.capacity_route(routed, slot_expert, scores, 3, cap);
  // Scores (t * 7919) mod N are a permutation of 0..N-1; the best are N-1 down to N-cap/2, each
  // on both slots of its row.
  int64_t kept = 0;
  for (int64_t t = 0; t < N; ++t) {
    const bool want = (t * 7919) % N >= N - cap / 2;
    for (int64_t j = 0; j < kmax; ++j) {
      kept += i32p(routed)[t * kmax + j] == 1;
      if (i32p(routed)[t * kmax + j] != (want ? 1 : -1)) FAIL_CHECK("row " << t << " slot " << j);
    }
  }
  CHECK(kept == cap);
}

TEST_CASE("cpu slot_stats: per-id counts and rows without a true expert", "[cpu]") {
  CpuBackend be(DType::F64, 1);
  Arena ar(be);
  // n_total 5, n_true 3: ids 3, 4 are null.
  Tensor se = ar.i32({5, 3}, {0, 3, -1,    //
                              3, 4, -1,    // null only
                              -1, -1, -1,  // empty
                              2, 0, 1,     //
                              4, 2, -1});
  const Backend::SlotStats st = be.slot_stats(se, 5, 3);
  CHECK(st.per_id == std::vector<int64_t>{2, 1, 2, 2, 2});
  CHECK(st.rows_without_true == 2);
  CHECK(be.slot_stats(se, 5, 5).rows_without_true == 1);
  CHECK_THROWS_AS(be.slot_stats(se, 4, 3), InternalError);  // id 4 outside [0, 4)
}
