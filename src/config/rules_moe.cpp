// Cross-field rules of the MoE layer (docs/configs.md lists them; spec/selection.md has the math):
// each strategy's own rules (registered with it, config/strategy.h: strategy_rules()), then the
// rules here, which relate keys of several families without belonging to one strategy.
#include <fmt/format.h>

#include "config/schema.h"
#include "config/strategy.h"

namespace am {

namespace {

using Msg = std::optional<std::string>;

// A d_low that changes nothing would suggest an AoE model that is not there.
Msg d_low_is_used(const Config& c, const ShowKey& show) {
  const MoeConfig& m = c.model.moe;
  const bool sizes_router = m.scorer.type == "large_router" && m.scorer.d_hidden == 0;
  if (m.expert.d_low == 0 || m.expert.type == "factorized" || sizes_router) return std::nullopt;
  return fmt::format(
      "{} has no effect with {} and {}{}: d_low is the rank of factorized experts "
      "(expert.type: factorized) and sizes a large_router whose d_hidden is 0; set "
      "model.moe.expert.type: factorized, or remove d_low",
      show("model.moe.expert.d_low"), show("model.moe.expert.type"), show("model.moe.scorer.type"),
      m.scorer.type == "large_router" ? " and " + show("model.moe.scorer.d_hidden") : "");
}

Msg ep_divides_experts(const Config& c, const ShowKey& show) {
  const int ep = c.dist.ep, n = c.model.moe.n_experts;
  const bool dense = c.model.moe.dense();
  if (ep == 1 || (!dense && n % ep == 0)) return std::nullopt;
  if (dense) return fmt::format("{} needs an MoE model, but the model is dense", show("dist.ep"));
  return fmt::format(
      "{} must divide {} (each rank of an expert-parallel group holds n_experts / ep "
      "experts)",
      show("dist.ep"), show("model.moe.n_experts"));
}

Msg bias_needs_ranking_selector(const Config& c, const ShowKey& show) {
  const MoeConfig& m = c.model.moe;
  if (m.dense() || m.aux.bias_update_rate == 0 || selector_of(m).selection_bias) return std::nullopt;
  std::vector<std::string> ranking;
  for (const SelectorInfo* s : selector_strategies()) {
    if (s->selection_bias) ranking.push_back(s->name);
  }
  return fmt::format(
      "{} needs model.moe.selector.type: {} (the bias steers top-k selection), but {}; "
      "set bias_update_rate: 0",
      show("model.moe.aux.bias_update_rate"), fmt::join(ranking, " or "), show("model.moe.selector.type"));
}

}  // namespace

std::vector<CrossRule> moe_rules() {
  std::vector<CrossRule> rules = strategy_rules();
  rules.push_back(
      {"model.moe.expert.d_low is 0 unless it is used: by expert.type factorized, or to size a "
       "large_router whose d_hidden is 0 (a d_low that changes nothing would suggest an AoE "
       "model that is not there)",
       d_low_is_used});
  rules.push_back(
      {"dist.ep divides model.moe.n_experts; a dense model has no experts to split (ep 1)", ep_divides_experts});
  rules.push_back(
      {"model.moe.aux.bias_update_rate > 0 only with model.moe.selector.type topk (a selector that "
       "ranks scores plus a bias)",
       bias_needs_ranking_selector});
  return rules;
}

}  // namespace am
