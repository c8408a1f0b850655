// The MoE layer on its own: its output and auxiliary losses differentiated by finite differences
// with respect to its input and every parameter, and the auxiliary losses against values worked
// out by hand.
#include "cpu/cpu_backend.h"
#include "moe/moe_layer.h"
#include "support/gradcheck.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

using namespace am;

namespace {

std::vector<double> randn(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace

namespace {

// Balancing statistics held in host vectors (the CPU backend's memory): slots per id, column
// sums of P, the scope's tokens and replicas.
struct HostBalance {
  std::vector<double> selected, prob_sums;
  BalanceStats stats;
  HostBalance(std::vector<double> sel, std::vector<double> sums, double tokens, int replicas = 1)
      : selected(std::move(sel)), prob_sums(std::move(sums)) {
    stats.selected = Tensor(selected.data(), DType::F64, {static_cast<int64_t>(selected.size())});
    stats.prob_sums = Tensor(prob_sums.data(), DType::F64, {static_cast<int64_t>(prob_sums.size())});
    stats.tokens = tokens;
    stats.replicas = replicas;
  }
  HostBalance(const HostBalance&) = delete;
  HostBalance& operator=(const HostBalance&) = delete;
};

// The column sums of probs (N, w) (balance_scope micro_batch: the micro-batch's own statistics).
std::vector<double> prob_column_sums(const std::vector<double>& probs, size_t w, int64_t N) {
  std::vector<double> sums(w, 0.0);
  for (size_t t = 0; t < static_cast<size_t>(N); ++t) {
    for (size_t i = 0; i < w; ++i) sums[i] += probs[t * w + i];
  }
  return sums;
}

}  // namespace

TEST_CASE("MoE layer: d(R.y + aux)/d(input, router, experts) matches finite differences", "[moe][gradcheck]") {
  ModelConfig cfg;
  cfg.d_model = 6;
  cfg.n_layers = 1;
  cfg.init_std = 0.5;  // well-separated router scores: eps never changes the top-k selection
  cfg.moe.n_experts = 4;
  cfg.moe.d_ffn = 5;
  cfg.moe.selector.k = 2;
  cfg.moe.aux.load_balance = 0.3;
  cfg.moe.aux.z_loss = 0.05;
  const int64_t N = 7, d = cfg.d_model;

  CpuBackend be(DType::F64, 1);
  MoeLayer layer(be, cfg, 0);
  ParamTable table;
  layer.register_params(table);
  ParamStore store(be, std::move(table));
  store.init(5);
  layer.bind(store);
  layer.allocate(N);

  std::vector<double> h = randn(N * d, 1), r = randn(N * d, 2), y(N * d), dh(N * d, 0.0);
  Tensor ht(h.data(), DType::F64, {N, d}), yt(y.data(), DType::F64, {N, d});
  Tensor rt(r.data(), DType::F64, {N, d}), dht(dh.data(), DType::F64, {N, d});
  auto loss = [&]() {
    const double aux = layer.forward(ht, yt);
    double s = aux;
    for (size_t i = 0; i < y.size(); ++i) s += r[i] * y[i];
    return s;
  };
  loss();
  store.zero_grads();
  layer.backward(ht, rt, dht, 1.0);

  test::GradcheckOptions opt;
  opt.what = "dL/dh";
  CHECK(test::check_gradient(loss, h.data(), dh.data(), N * d, opt).ok());
  for (int i = 0; i < store.table().size(); ++i) {
    Tensor p = store.value(i), g = store.grad(i);
    const std::vector<double> analytic(g.as<double>(), g.as<double>() + g.numel());
    opt.what = store.table().at(i).name;
    CHECK(test::check_gradient(loss, p.as<double>(), analytic.data(), p.numel(), opt).ok());
  }
  // one forward: every token got exactly k = 2 experts
  layer.reset_stats();
  loss();
  int64_t total = 0;
  for (int64_t c : layer.stats().expert_assignments) total += c;
  CHECK(total == N * 2);
  CHECK(layer.stats().tokens == N);
}

TEST_CASE("load-balancing loss and its gradient: hand-computed values", "[moe]") {
  CpuBackend be(DType::F64, 1);
  // 2 tokens, 3 experts, top-1: token 0 -> expert 0, token 1 -> expert 2.
  std::vector<double> probs = {0.7, 0.2, 0.1, 0.1, 0.3, 0.6}, scores(6, 0.0);
  const HostBalance hb({1, 0, 1}, prob_column_sums(probs, 3, 2), 2);  // slots per expert
  const BalanceStats& stats = hb.stats;
  AuxInputs in;
  in.probs = Tensor(probs.data(), DType::F64, {2, 3});
  in.scores = Tensor(scores.data(), DType::F64, {2, 3});
  in.balance = &stats;
  in.n_tokens = 2;
  in.n_experts = 3;
  LoadBalanceLoss lb(be, 0.01);
  // f = (0.5, 0, 0.5), Pbar = (0.4, 0.25, 0.35): L = 0.01 * 3 * (0.2 + 0.175) = 0.01125
  CHECK(lb.forward_value(be, in) == Approx(0.01125).epsilon(1e-12));
  std::vector<double> dprobs(6, 0.0), dscores(6, 0.0);
  lb.backward(in, Tensor(dscores.data(), DType::F64, {2, 3}), Tensor(dprobs.data(), DType::F64, {2, 3}), 2.0);
  // dL/dP[t][i] = alpha * n * f_i / T, times scale 2: (0.015, 0, 0.015) on each row
  const std::vector<double> want = {0.015, 0, 0.015, 0.015, 0, 0.015};
  for (int i = 0; i < 6; ++i) CHECK(dprobs[i] == Approx(want[i]).margin(1e-15));
  for (double x : dscores) CHECK(x == 0.0);
}

TEST_CASE("load balancing over 2 ranks (balance_scope data_parallel): hand-computed values", "[moe]") {
  CpuBackend be(DType::F64, 1);
  // This rank: the 2 tokens of the case above. The other rank's 2 tokens: probs (0.2, 0.2, 0.6)
  // and (0.5, 0.4, 0.1), both to expert 1. Over the 4 tokens: slots (1, 2, 1), f = (0.25, 0.5,
  // 0.25); P sums (1.5, 1.1, 1.4), Pbar = (0.375, 0.275, 0.35).
  std::vector<double> probs = {0.7, 0.2, 0.1, 0.1, 0.3, 0.6}, scores(6, 0.0);
  const HostBalance hb({1, 2, 1}, {1.5, 1.1, 1.4}, 4, 2);
  const BalanceStats& stats = hb.stats;
  AuxInputs in;
  in.probs = Tensor(probs.data(), DType::F64, {2, 3});
  in.scores = Tensor(scores.data(), DType::F64, {2, 3});
  in.n_tokens = 2;
  in.n_experts = 3;
  in.balance = &stats;
  LoadBalanceLoss lb(be, 0.01);
  // L = 0.01 * 3 * (0.25 * 0.375 + 0.5 * 0.275 + 0.25 * 0.35) = 0.0095625, the same on both ranks
  CHECK(lb.forward_value(be, in) == Approx(0.0095625).epsilon(1e-12));
  std::vector<double> dprobs(6, 0.0), dscores(6, 0.0);
  lb.backward(in, Tensor(dscores.data(), DType::F64, {2, 3}), Tensor(dprobs.data(), DType::F64, {2, 3}), 1.0);
  // dL/dP_t[i] = alpha n f_i / 4 per token of either rank; times 2 here, because the gradient
  // reduction averages the 2 ranks' gradients: 2 * 0.03 * f_i / 4 = (0.00375, 0.0075, 0.00375)
  const std::vector<double> want = {0.00375, 0.0075, 0.00375, 0.00375, 0.0075, 0.00375};
  for (int i = 0; i < 6; ++i) CHECK(dprobs[i] == Approx(want[i]).margin(1e-15));
}

TEST_CASE("router z-loss and its gradient: hand-computed values", "[moe]") {
  CpuBackend be(DType::F64, 1);
  // logits rows (0, ln 3) and (0, 0): logsumexp ln 4 and ln 2
  std::vector<double> z = {0.0, std::log(3.0), 0.0, 0.0}, p = {0.25, 0.75, 0.5, 0.5};
  AuxInputs in;
  in.scores = Tensor(z.data(), DType::F64, {2, 2});
  in.probs = Tensor(p.data(), DType::F64, {2, 2});
  in.n_tokens = 2;
  in.n_experts = 2;
  ZLoss zl(be, 0.1);
  const double ln2 = std::log(2.0);
  // 0.1 / 2 * ((2 ln 2)^2 + (ln 2)^2) = 0.25 (ln 2)^2
  CHECK(zl.forward_value(be, in) == Approx(0.25 * ln2 * ln2).epsilon(1e-12));
  std::vector<double> dz(4, 0.0), dp(4, 0.0);
  zl.backward(in, Tensor(dz.data(), DType::F64, {2, 2}), Tensor(dp.data(), DType::F64, {2, 2}), 1.0);
  // dz_t = 2 beta lse_t P_t / T = 0.1 * lse_t * P_t
  CHECK(dz[0] == Approx(0.1 * 2 * ln2 * 0.25));
  CHECK(dz[1] == Approx(0.1 * 2 * ln2 * 0.75));
  CHECK(dz[2] == Approx(0.1 * ln2 * 0.5));
  CHECK(dz[3] == Approx(0.1 * ln2 * 0.5));
  for (double x : dp) CHECK(x == 0.0);
}

TEST_CASE("auxiliary-loss-free balancing moves the selection bias against each expert's load", "[moe]") {
  ModelConfig cfg;
  cfg.d_model = 2;
  cfg.n_layers = 1;
  cfg.moe.n_experts = 4;
  cfg.moe.d_ffn = 3;
  cfg.moe.selector.k = 2;
  cfg.moe.aux.load_balance = 0.0;
  cfg.moe.aux.bias_update_rate = 0.1;
  CpuBackend be(DType::F64, 1);
  MoeLayer layer(be, cfg, 0);
  ParamTable table;
  layer.register_params(table);
  ParamStore store(be, std::move(table));
  store.init(1);
  layer.bind(store);
  layer.allocate(3);
  // Router rows: every token (1, 0) scores (10, 9, -10, -9): experts 0 and 1 take all the load.
  double* w = store.value(store.table().index("model.layers.0.block_sparse_moe.gate.weight")).as<double>();
  const double rows[4][2] = {{10, 0}, {9, 0}, {-10, 0}, {-9, 0}};
  for (int e = 0; e < 4; ++e) w[2 * e] = rows[e][0], w[2 * e + 1] = rows[e][1];
  std::vector<double> h = {1, 0, 1, 0, 1, 0}, y(6);
  const Tensor bias = store.value(store.table().index("model.layers.0.block_sparse_moe.expert_bias"));
  CHECK_FALSE(store.table().at(store.table().index("model.layers.0.block_sparse_moe.expert_bias")).trainable);

  layer.begin_step(0);
  layer.forward(Tensor(h.data(), DType::F64, {3, 2}), Tensor(y.data(), DType::F64, {3, 2}));
  layer.update_selection_bias();
  const std::vector<double> want = {-0.1, -0.1, 0.1, 0.1};  // over-loaded down, idle up
  for (int e = 0; e < 4; ++e) CHECK(bias.as<double>()[e] == Approx(want[e]));

  // The bias changes the selection only: with a bias large enough, experts 2 and 3 are chosen,
  // and their gates are still the softmax of their unbiased scores (-10, -9).
  bias.as<double>()[2] = bias.as<double>()[3] = 100.0;
  layer.begin_step(1);
  layer.forward(Tensor(h.data(), DType::F64, {3, 2}), Tensor(y.data(), DType::F64, {3, 2}));
  const Tensor slots = layer.routing().slot_expert, gates = layer.routing().slot_gate;
  CHECK(slots.as<int32_t>()[0] + slots.as<int32_t>()[1] == 5);  // experts 2 and 3
  const double g3 = 1.0 / (1.0 + std::exp(-1.0));               // softmax(-10, -9)[expert 3]
  CHECK((gates.as<double>()[0] == Approx(g3) || gates.as<double>()[1] == Approx(g3)));
}

TEST_CASE("null-averaged balancing and confidence entropy: hand-computed values", "[moe]") {
  CpuBackend be(DType::F64, 1);
  // 2 tokens, 2 true + 2 null experts. Selections: token 0 -> {true 0, null 2}, token 1 -> {null 3, null 2}.
  std::vector<double> probs = {0.4, 0.1, 0.3, 0.2, 0.1, 0.1, 0.5, 0.3}, scores(8, 0.0);
  const HostBalance hb({1, 0, 2, 1}, prob_column_sums(probs, 4, 2), 2);
  const BalanceStats& stats = hb.stats;
  AuxInputs in;
  in.probs = Tensor(probs.data(), DType::F64, {2, 4});
  in.scores = Tensor(scores.data(), DType::F64, {2, 4});
  in.balance = &stats;
  in.n_tokens = 2;
  in.n_experts = 2;
  in.n_null = 2;
  // f = (0.5, 0, 1.0, 0.5) -> f~ = (0.5, 0, 0.75, 0.75); Pbar = (0.25, 0.1, 0.4, 0.25)
  // L = 0.1 * 4 * (0.125 + 0 + 0.3 + 0.1875) = 0.245
  NullLoadBalanceLoss nlb(be, 0.1);
  CHECK(nlb.forward_value(be, in) == Approx(0.245).epsilon(1e-12));
  std::vector<double> dp(8, 0.0), ds(8, 0.0);
  nlb.backward(in, Tensor(ds.data(), DType::F64, {2, 4}), Tensor(dp.data(), DType::F64, {2, 4}), 1.0);
  // dP_t[i] = alpha (n+m) f~_i / T = 0.2 f~_i
  const double want[4] = {0.1, 0.0, 0.15, 0.15};
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < 4; ++i) CHECK(dp[t * 4 + i] == Approx(want[i]).margin(1e-15));
  }
  // Entropy: gamma / T * sum_t H(P_t)
  EntropyLoss ent(be, 0.5);
  double h = 0;
  for (double p : probs) h -= p * std::log(p);
  CHECK(ent.forward_value(be, in) == Approx(0.5 * h / 2).epsilon(1e-12));
  std::fill(dp.begin(), dp.end(), 0.0);
  ent.backward(in, Tensor(ds.data(), DType::F64, {2, 4}), Tensor(dp.data(), DType::F64, {2, 4}), 1.0);
  for (int i = 0; i < 8; ++i) CHECK(dp[i] == Approx(-0.25 * (std::log(probs[i]) + 1.0)));
  // A schedule switches the coefficient at its step.
  Schedule annealing;
  annealing.points = {{0, 0.1}, {5, 0.001}};
  NullLoadBalanceLoss annealed(be, annealing);
  in.step = 4;
  CHECK(annealed.forward_value(be, in) == Approx(0.245));
  in.step = 5;
  CHECK(annealed.forward_value(be, in) == Approx(0.00245));
}

namespace {

// One top-k selection on the CPU in double: scores (N, nt) row-major, their row softmax as probs.
struct HostSelection {
  std::vector<double> scores, probs;
  std::vector<int32_t> experts;
  std::vector<double> gates;
  HostSelection(std::vector<double> s, int64_t nt, int k) : scores(std::move(s)), probs(scores.size()) {
    const int64_t N = static_cast<int64_t>(scores.size()) / nt;
    for (int64_t t = 0; t < N; ++t) {
      double sum = 0;
      for (int64_t i = 0; i < nt; ++i) sum += std::exp(scores[t * nt + i]);
      for (int64_t i = 0; i < nt; ++i) probs[t * nt + i] = std::exp(scores[t * nt + i]) / sum;
    }
    experts.assign(N * k, -9);
    gates.assign(N * k, -9.0);
  }
  Tensor t(std::vector<double>& v, int64_t nt) {
    return {v.data(), DType::F64, {static_cast<int64_t>(v.size()) / nt, nt}};
  }
  Tensor slots_e(int k) { return {experts.data(), DType::I32, {static_cast<int64_t>(experts.size()) / k, k}}; }
  Tensor slots_g(int k) { return {gates.data(), DType::F64, {static_cast<int64_t>(gates.size()) / k, k}}; }
};

}  // namespace

TEST_CASE("top-k gate softmax_all: the selected experts' probabilities over all experts, by hand", "[moe]") {
  CpuBackend be(DType::F64, 1);
  const double E1 = std::exp(1.0), E3 = std::exp(3.0), E05 = std::exp(0.5), E2 = std::exp(2.0);
  SECTION("4 true experts, k 2: gates P_1, P_3 (not renormalised); dP gets dgate at the slots") {
    const int64_t nt = 4;
    const int k = 2;
    HostSelection s({1.0, 3.0, 0.5, 2.0}, nt, k);
    TopKSelector sel(be, k, 4, 0.0, /*softmax_all=*/true);
    sel.select(s.t(s.scores, nt), s.t(s.scores, nt), s.t(s.probs, nt), s.slots_e(k), s.slots_g(k));
    CHECK(s.experts == std::vector<int32_t>{1, 3});
    const double Z = E1 + E3 + E05 + E2;
    CHECK(s.gates[0] == Approx(E3 / Z).epsilon(1e-14));
    CHECK(s.gates[1] == Approx(E2 / Z).epsilon(1e-14));
    CHECK(s.gates[0] + s.gates[1] < 0.95);  // not renormalised (renormalized: 1)

    std::vector<double> dgate{0.7, -0.2}, dscores(nt, 0.0), dprobs(nt, 0.25);
    sel.backward(s.t(dgate, k), s.slots_e(k), s.slots_g(k), s.t(s.probs, nt), s.t(dscores, nt), s.t(dprobs, nt));
    const std::vector<double> expected{0.25, 0.25 + 0.7, 0.25, 0.25 - 0.2};  // accumulated
    for (int64_t i = 0; i < nt; ++i) CHECK(dprobs[i] == expected[i]);
    CHECK(dscores == std::vector<double>(nt, 0.0));  // through P: the scorer's softmax backward

    // The default (renormalized) on the same scores: the softmax over the two selected.
    TopKSelector renorm(be, k, 4, 0.0);
    renorm.select(s.t(s.scores, nt), s.t(s.scores, nt), s.t(s.probs, nt), s.slots_e(k), s.slots_g(k));
    CHECK(s.gates[0] == Approx(E3 / (E3 + E2)).epsilon(1e-14));
  }
  SECTION("3 true experts and 1 null expert: P is over all 4 columns, the null takes its mass") {
    const int64_t nt = 4;
    const int k = 2;
    HostSelection s({1.0, 3.0, 0.5, 2.0}, nt, k);  // column 3 is the null expert
    TopKSelector sel(be, k, 3, 0.0, /*softmax_all=*/true);
    sel.select(s.t(s.scores, nt), s.t(s.scores, nt), s.t(s.probs, nt), s.slots_e(k), s.slots_g(k));
    CHECK(s.experts == std::vector<int32_t>{1, 3});
    CHECK(s.gates[0] == Approx(E3 / (E1 + E3 + E05 + E2)).epsilon(1e-14));
  }
  SECTION("the selection follows rank_scores (a selection bias), the gates follow P") {
    const int64_t nt = 3;
    const int k = 1;
    HostSelection s({2.0, 1.0, 0.0}, nt, k);
    std::vector<double> rank{2.0, 2.5, 0.0};
    TopKSelector sel(be, k, 3, 0.0, /*softmax_all=*/true);
    sel.select(s.t(rank, nt), s.t(s.scores, nt), s.t(s.probs, nt), s.slots_e(k), s.slots_g(k));
    CHECK(s.experts == std::vector<int32_t>{1});
    CHECK(s.gates[0] == Approx(std::exp(1.0) / (E2 + std::exp(1.0) + 1.0)).epsilon(1e-14));
  }
}

TEST_CASE("linear large router: z = (h A^T) B^T, no activation, by hand", "[moe]") {
  CpuBackend be(DType::F64, 1);
  const int n = 3, hid = 5, d = 4;
  const int64_t N = 2;
  LargeRouterScorer scorer(be, "r", n, hid, d, 0.5, /*linear=*/true);
  ParamTable table;
  scorer.register_params(table);
  ParamStore store(be, std::move(table));
  store.init(11);
  scorer.bind(store);
  scorer.allocate(N);
  const double* A = store.value(0).as<double>();  // (hid, d)
  const double* B = store.value(1).as<double>();  // (n, hid)
  std::vector<double> h = randn(static_cast<size_t>(N * d), 4), z(N * n), p(N * n);
  scorer.forward(Tensor(h.data(), DType::F64, {N, d}), Tensor(z.data(), DType::F64, {N, n}),
                 Tensor(p.data(), DType::F64, {N, n}));
  for (int64_t t = 0; t < N; ++t) {
    for (int i = 0; i < n; ++i) {
      double zi = 0;
      for (int j = 0; j < hid; ++j) {
        double a = 0;
        for (int c = 0; c < d; ++c) a += h[t * d + c] * A[j * d + c];
        zi += a * B[i * hid + j];  // no SiLU on a
      }
      CHECK(z[t * n + i] == Approx(zi).epsilon(1e-13));
    }
  }
}
