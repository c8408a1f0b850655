// The registry of MoE strategies (config/strategy.h, moe/strategies.h): what each strategy
// registers reaches the schema, the rules, the factories and the lookups, and nothing else names
// a strategy.
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "config/schema.h"
#include "config/strategy.h"
#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "moe/moe_layer.h"
#include "moe/strategies.h"

using namespace am;

namespace {

const KeySpec& schema_key(const std::string& path) {
  const KeySpec* k = find_key(path);
  REQUIRE(k != nullptr);
  return *k;
}

template <typename Info>
std::vector<std::string> names(const std::vector<const Info*>& list) {
  std::vector<std::string> out;
  for (const Info* s : list) out.push_back(s->name);
  return out;
}

template <typename Info>
void check_keys_and_rules(const std::vector<const Info*>& list) {
  std::set<std::string> rule_docs;
  for (const CrossRule& r : config_rules()) rule_docs.insert(r.doc);
  for (const Info* s : list) {
    for (const KeySpec& k : s->keys) {
      INFO(s->name << " registers " << k.path);
      CHECK(schema_key(k.path).doc == k.doc);
    }
    for (const CrossRule& r : s->rules) {
      INFO(s->name << " registers the rule " << r.doc);
      CHECK(rule_docs.count(r.doc) == 1);
    }
  }
}

}  // namespace

TEST_CASE("the type keys offer exactly the registered strategies, in order", "[strategy][config]") {
  CHECK(names(expert_strategies()) == std::vector<std::string>{"swiglu", "factorized"});
  CHECK(names(scorer_strategies()) == std::vector<std::string>{"router", "large_router", "act_norm", "none"});
  CHECK(names(selector_strategies()) == std::vector<std::string>{"topk", "topp", "expert_choice"});
  CHECK(names(aux_loss_strategies()) ==
        std::vector<std::string>{"load_balance", "null_load_balance", "z_loss", "entropy"});
  CHECK(schema_key("model.moe.expert.type").choices == names(expert_strategies()));
  CHECK(schema_key("model.moe.scorer.type").choices == names(scorer_strategies()));
  CHECK(schema_key("model.moe.selector.type").choices == names(selector_strategies()));
  CHECK(strategy_names(Family::Selector) == "topk, topp or expert_choice");
}

TEST_CASE("every strategy's keys are schema keys and its rules are config rules", "[strategy][config]") {
  check_keys_and_rules(expert_strategies());
  check_keys_and_rules(scorer_strategies());
  check_keys_and_rules(selector_strategies());
  check_keys_and_rules(aux_loss_strategies());
  // An aux loss's first key is its coefficient, named after it.
  for (const AuxLossInfo* s : aux_loss_strategies()) {
    REQUIRE(!s->keys.empty());
    CHECK(s->keys[0].path == "model.moe.aux." + s->name);
  }
}

TEST_CASE("a type that no strategy registered is refused by name, with the valid ones", "[strategy][config]") {
  MoeConfig m;
  m.selector.type = "top_q";
  try {
    (void)selector_of(m);
    FAIL("selector_of accepted an unregistered selector");
  } catch (const UserError& e) {
    CHECK_THAT(e.what(), Catch::Contains("model.moe.selector.type 'top_q' is not a registered strategy"));
    CHECK_THAT(e.what(), Catch::Contains("valid: topk, topp or expert_choice"));
  }
  m = MoeConfig{};
  m.scorer.type = "Router";
  CHECK_THROWS_AS(scorer_of(m), UserError);
  m = MoeConfig{};
  m.expert.type = "";
  CHECK_THROWS_AS(expert_of(m), UserError);
}

TEST_CASE("the lookups return the chosen strategy with its factory and traits", "[strategy]") {
  MoeConfig m;
  m.selector.type = "expert_choice";
  CHECK(&selector_strategy(m) == &selector_of(m));
  CHECK(!selector_of(m).causal);
  m.selector.type = "topk";
  CHECK(selector_of(m).causal);
  CHECK(!selector_of(m).drops_tokens(m));
  m.selector.capacity_factor = 1.25;
  CHECK(selector_of(m).drops_tokens(m));
  m.scorer.type = "none";
  CHECK(m.dense());
  CHECK(active_aux_losses(m).empty());  // a dense model has no auxiliary losses
  m.scorer.type = "router";
  m.aux.z_loss = 1e-3;
  m.aux.entropy = 0.0;
  CHECK(names(active_aux_losses(m)) == std::vector<std::string>{"load_balance", "z_loss"});
}

TEST_CASE("make_moe_components builds the chosen parts through the registry", "[strategy][moe]") {
  ModelConfig cfg;
  cfg.vocab_size = 16;
  cfg.d_model = 8;
  cfg.n_layers = 1;
  cfg.n_heads = 2;
  cfg.moe.n_experts = 4;
  cfg.moe.d_ffn = 16;
  cfg.moe.expert.type = "factorized";
  cfg.moe.expert.d_low = 2;
  cfg.moe.scorer.type = "act_norm";
  cfg.moe.selector.type = "topp";
  cfg.moe.aux.entropy = 0.01;
  CpuBackend be(DType::F32, 1);
  MoeComponents c = make_moe_components(be, cfg, 0, 4);
  CHECK(dynamic_cast<FactorizedExperts*>(c.experts.get()) != nullptr);
  CHECK(dynamic_cast<ActNormScorer*>(c.scorer.get()) != nullptr);
  CHECK(dynamic_cast<TopPSelector*>(c.selector.get()) != nullptr);
  REQUIRE(c.aux.size() == 2);
  CHECK(c.aux[0]->name() == "load_balance");
  CHECK(c.aux[1]->name() == "entropy");
  cfg.moe.scorer.type = "none";  // dense: the one FFN, no scorer or selector
  cfg.moe.n_experts = 1;
  c = make_moe_components(be, cfg, 0, 4);
  CHECK(dynamic_cast<SwigluExperts*>(c.experts.get()) != nullptr);
  CHECK(c.scorer == nullptr);
  CHECK(c.selector == nullptr);
}

TEST_CASE("a strategy without its factory or counts is refused when it registers", "[strategy]") {
  const size_t before = selector_strategies().size();
  SelectorStrategy no_factory;
  no_factory.name = "incomplete";
  no_factory.experts_per_token = [](const MoeConfig&) { return 1.0; };
  no_factory.per_token_note = [](const MoeConfig&) { return std::string("1"); };
  CHECK_THROWS_WITH(register_strategy(no_factory),
                    Catch::Contains("selector strategy incomplete registers no factory"));
  SelectorStrategy no_counts;
  no_counts.name = "incomplete";
  no_counts.make = [](Backend&, const SelectorArgs&) -> std::unique_ptr<Selector> { return nullptr; };
  CHECK_THROWS_WITH(register_strategy(no_counts), Catch::Contains("registers no experts_per_token"));
  ScorerStrategy no_scorer_factory;
  no_scorer_factory.name = "incomplete";
  no_scorer_factory.params = [](const MoeConfig&, int) -> int64_t { return 0; };
  CHECK_THROWS_WITH(register_strategy(no_scorer_factory),
                    Catch::Contains("scorer strategy incomplete registers no factory"));
  CHECK(selector_strategies().size() == before);  // nothing half-registered
  CHECK(std::string(strategy_names(Family::Scorer)) == "router, large_router, act_norm or none");
}
