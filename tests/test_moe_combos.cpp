// Every scorer x selector x auxiliary-loss combination of the MoE layer, differentiated by finite
// differences in double: d(R.y + aux)/d(input and every parameter). The selection is discrete, so
// each check also verifies that no perturbation changed which experts were chosen (inputs and
// weights are drawn large enough that the scores are well separated).
#include "cpu/cpu_backend.h"
#include "moe/moe_layer.h"
#include "support/gradcheck.h"

#include <catch2/catch.hpp>

#include <functional>
#include <random>

using namespace am;

namespace {

struct Combo {
  std::string name;
  std::function<void(MoeConfig&)> set;
};

ModelConfig base_config() {
  ModelConfig c;
  c.d_model = 6;
  c.n_layers = 1;
  c.init_std = 0.5;
  c.moe.n_experts = 4;
  c.moe.d_ffn = 5;
  c.moe.selector.k = 2;
  c.moe.aux.load_balance = 0.0;
  return c;
}

std::vector<int32_t> routed_slots(const MoeLayer& layer) {
  const Tensor r = layer.routing().routed;
  return std::vector<int32_t>(r.as<int32_t>(), r.as<int32_t>() + r.numel());
}

void check_combo(const Combo& combo) {
  ModelConfig cfg = base_config();
  combo.set(cfg.moe);
  const int64_t B = 2, T = 4, N = B * T, d = cfg.d_model;
  CpuBackend be(DType::F64, 1);
  MoeLayer layer(be, cfg, 0, T);
  ParamTable table;
  layer.register_params(table);
  ParamStore store(be, std::move(table));
  store.init(17);
  layer.bind(store);
  layer.allocate(N);

  std::mt19937_64 rng(23);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> h(N * d), r(N * d), y(N * d), dh(N * d, 0.0);
  for (double& x : h) x = nd(rng);
  for (double& x : r) x = nd(rng);
  Tensor ht(h.data(), DType::F64, {N, d}), yt(y.data(), DType::F64, {N, d});
  Tensor rt(r.data(), DType::F64, {N, d}), dht(dh.data(), DType::F64, {N, d});

  std::vector<int32_t> reference;
  bool selection_changed = false;
  auto loss = [&]() {
    double s = layer.forward(ht, yt);
    for (size_t i = 0; i < y.size(); ++i) s += r[i] * y[i];
    if (!reference.empty() && routed_slots(layer) != reference) selection_changed = true;
    return s;
  };
  loss();
  reference = routed_slots(layer);
  store.zero_grads();
  layer.backward(ht, rt, dht, 1.0);

  test::GradcheckOptions opt;
  opt.max_entries = 12;
  opt.what = combo.name + ": dL/dh";
  CHECK(test::check_gradient(loss, h.data(), dh.data(), N * d, opt).ok());
  for (int i = 0; i < store.table().size(); ++i) {
    if (!store.table().at(i).trainable) continue;
    Tensor p = store.value(i), g = store.grad(i);
    const std::vector<double> analytic(g.as<double>(), g.as<double>() + g.numel());
    opt.what = combo.name + ": " + store.table().at(i).name;
    CHECK(test::check_gradient(loss, p.as<double>(), analytic.data(), p.numel(), opt).ok());
  }
  INFO(combo.name << ": a finite-difference step changed the selection; the check above is void");
  CHECK_FALSE(selection_changed);
}

void aoe(MoeConfig& m, const std::string& norm) {
  m.expert.type = "factorized";
  m.expert.d_low = 3;
  m.expert.d_wide = 5;
  m.scorer.type = "act_norm";
  m.scorer.node = "latent";
  m.scorer.norm = norm;
}

}  // namespace

// The full product: 7 scorers x 10 selectors, each with every auxiliary loss that applies to it
// switched on at once (balancing or null-averaged balancing, entropy, and z-loss for logits).
TEST_CASE("MoE combinations: every scorer x selector with its auxiliary losses", "[moe][gradcheck]") {
  const std::vector<Combo> scorers = {
      {"router", [](MoeConfig&) {}},
      {"large router",
       [](MoeConfig& m) {
         m.scorer.type = "large_router";
         m.scorer.d_hidden = 7;
       }},
      {"linear large router",
       [](MoeConfig& m) {
         m.scorer.type = "large_router";
         m.scorer.d_hidden = 7;
         m.scorer.activation = "linear";
       }},
      {"factorized experts + router",
       [](MoeConfig& m) {
         m.expert.type = "factorized";
         m.expert.d_low = 3;
         m.expert.d_wide = 5;
       }},
      {"aoe l2", [](MoeConfig& m) { aoe(m, "l2"); }},
      {"aoe l1", [](MoeConfig& m) { aoe(m, "l1"); }},
      {"aoe linf", [](MoeConfig& m) { aoe(m, "linf"); }},
  };
  const std::vector<Combo> selectors = {
      {"topk", [](MoeConfig&) {}},
      {"topk capacity", [](MoeConfig& m) { m.selector.capacity_factor = 0.6; }},
      {"topk null experts",
       [](MoeConfig& m) {
         m.selector.n_null = 2;
         m.selector.k = 3;
       }},
      {"topk softmax_all", [](MoeConfig& m) { m.selector.gate = "softmax_all"; }},
      {"topk softmax_all capacity",
       [](MoeConfig& m) {
         m.selector.gate = "softmax_all";
         m.selector.capacity_factor = 0.6;
       }},
      {"topk softmax_all null experts",
       [](MoeConfig& m) {
         m.selector.gate = "softmax_all";
         m.selector.n_null = 2;
         m.selector.k = 3;
       }},
      {"topp raw",
       [](MoeConfig& m) {
         m.selector.type = "topp";
         m.selector.p = 0.6;
       }},
      {"topp renormalised",
       [](MoeConfig& m) {
         m.selector.type = "topp";
         m.selector.p = 0.5;
         m.selector.renormalize = true;
         m.selector.max_k = 3;
       }},
      {"expert choice batch",
       [](MoeConfig& m) {
         m.selector.type = "expert_choice";
         m.selector.capacity_factor = 1.0;
       }},
      {"expert choice sequence",
       [](MoeConfig& m) {
         m.selector.type = "expert_choice";
         m.selector.capacity_factor = 2.0;
         m.selector.group = "sequence";
       }},
  };
  for (const Combo& sc : scorers) {
    for (const Combo& se : selectors) {
      const Combo c{sc.name + " / " + se.name, [&](MoeConfig& m) {
                      sc.set(m);
                      se.set(m);
                      if (m.selector.n_null > 0) {
                        m.aux.null_load_balance = 0.2;
                      } else {
                        m.aux.load_balance = 0.2;
                      }
                      m.aux.entropy = 0.1;
                      if (m.scorer.type != "act_norm") m.aux.z_loss = 0.02;
                    }};
      DYNAMIC_SECTION(c.name) { check_combo(c); }
    }
  }
}

TEST_CASE("MoE combinations: gates alone, without auxiliary losses", "[moe][gradcheck]") {
  check_combo({"router topk, no aux", [](MoeConfig&) {}});
  check_combo({"aoe topk, no aux", [](MoeConfig& m) { aoe(m, "l2"); }});
  check_combo({"aoe topk softmax_all (megablocks release), no aux", [](MoeConfig& m) {
                 aoe(m, "l2");
                 m.selector.gate = "softmax_all";
               }});
  check_combo({"linear large router, no aux", [](MoeConfig& m) {
                 m.scorer.type = "large_router";
                 m.scorer.d_hidden = 7;
                 m.scorer.activation = "linear";
               }});
}

TEST_CASE("AoE: the balancing loss reaches the W_down of experts no token selected", "[moe]") {
  // Through P = softmax of the norms of ALL experts, the load-balancing gradient reaches every
  // expert's W_down, selected or not (selection.md §6).
  ModelConfig cfg = base_config();
  aoe(cfg.moe, "l2");
  cfg.moe.selector.k = 1;
  cfg.moe.aux.load_balance = 0.5;
  const int64_t N = 3, d = cfg.d_model;
  CpuBackend be(DType::F64, 1);
  MoeLayer layer(be, cfg, 0);
  ParamTable table;
  layer.register_params(table);
  ParamStore store(be, std::move(table));
  store.init(3);
  layer.bind(store);
  layer.allocate(N);
  std::vector<double> h(N * d, 0.3), y(N * d), dy(N * d, 0.0), dh(N * d, 0.0);
  for (int64_t i = 0; i < N * d; ++i) h[i] += 0.1 * static_cast<double>(i % 5);
  Tensor ht(h.data(), DType::F64, {N, d}), yt(y.data(), DType::F64, {N, d});
  layer.forward(ht, yt);
  const auto& off = layer.routing().expert_offsets;
  int unselected = -1;
  for (int e = 0; e < 4; ++e) {
    if (off[e + 1] == off[e]) unselected = e;
  }
  REQUIRE(unselected >= 0);  // 3 tokens, top-1 of 4 experts: at least one expert is idle
  store.zero_grads();
  layer.backward(ht, Tensor(dy.data(), DType::F64, {N, d}), Tensor(dh.data(), DType::F64, {N, d}), 1.0);
  const Tensor g = store.grad(
      store.table().index("model.layers.0.block_sparse_moe.experts." + std::to_string(unselected) + ".w1_down.weight"));
  double norm = 0;
  for (int64_t i = 0; i < g.numel(); ++i) norm += g.as<double>()[i] * g.as<double>()[i];
  CHECK(norm > 1e-12);  // dy = 0: only the balancing loss can have produced it
}
