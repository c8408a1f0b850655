// The strategies of an MoE layer, by family: experts (model.moe.expert.type), scorers
// (model.moe.scorer.type), selectors (model.moe.selector.type) and auxiliary losses (one key each
// under model.moe.aux). A strategy is registered once, by the file that implements it (src/moe/,
// through moe/strategies.h, which adds the factory); the registry holds what the config layer and
// the rest of the program may ask about it without naming it: its own config keys and cross-field
// rules (config_schema() and config_rules() include them), its parameter counts, and its traits.
// docs/architecture.md, "Adding a selector", walks through one.
//
// The `type` values stay strings in the Config (they are what YAML, sweeps and checkpoints
// carry); load_config() accepts only registered names, and code outside config/ asks the strategy
// (selector_of(moe).causal, scorer_of(moe).params(...)) rather than comparing names.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/schema.h"

namespace am {

enum class Family { Expert, Scorer, Selector, AuxLoss };

// What every strategy states.
struct StrategyInfo {
  std::string name;              // the type key's value ("topk"); an aux loss: its key's last part ("z_loss")
  int order = 0;                 // place in its family: keys, docs and rules in this order (aux losses: summed)
  std::string doc;               // one phrase: what it is (docs/configs.md, the type key's row)
  std::vector<KeySpec> keys;     // the keys it owns (an aux loss: its coefficient first)
  std::vector<CrossRule> rules;  // its cross-field rules; checked for every config, chosen or not
};

// model.moe.expert.type: the expert FFN.
struct ExpertInfo : StrategyInfo {
  std::function<int(const MoeConfig&, int d_model)> hidden_width;  // d_ffn, or a factorized d_wide
  std::function<int64_t(const MoeConfig&, int d_model)> params;    // one expert's parameters
  bool latent = false;          // has a low-rank latent x W_down that activation norms can score
  bool mixtral_layout = false;  // Mixtral's w1, w2, w3
};

// model.moe.scorer.type: where a token's per-expert scores come from.
struct ScorerInfo : StrategyInfo {
  std::function<int64_t(const MoeConfig&, int d_model)> params;  // per layer
  bool logits = false;            // scores are logits whose softmax is the probabilities (the z-loss needs them)
  bool activation_norms = false;  // scores are activation norms (the metrics report their means)
  bool dense = false;             // none: no MoE layer, one dense SwiGLU FFN
  bool mixtral_layout = false;    // Mixtral's router (one gate matrix, no null experts' rows of its own)
};

// model.moe.selector.type: which experts a token goes to, with which gate weights.
struct SelectorInfo : StrategyInfo {
  std::function<double(const MoeConfig&)> experts_per_token;    // at most, or on average: the active count
  std::function<std::string(const MoeConfig&)> per_token_note;  // how that number counts (`validate`)
  bool causal = true;  // a token's experts depend on that token alone (generation, task scoring)
  // A capacity may drop tokens that others in the batch beat.
  std::function<bool(const MoeConfig&)> drops_tokens = [](const MoeConfig&) { return false; };
  bool selection_bias = false;  // ranks scores + a bias, so aux-loss-free balancing applies
  // Plain top-k softmax routing, as Mixtral's (config.json then says Mixtral).
  std::function<bool(const MoeConfig&)> mixtral_routing = [](const MoeConfig&) { return false; };
};

// An auxiliary loss: on when its coefficient is.
struct AuxLossInfo : StrategyInfo {
  std::function<const Schedule&(const MoeConfig&)> coefficient;
  bool active(const MoeConfig& m) const { return coefficient(m).active(); }
};

// Registration (moe/strategies.cpp calls these; the object must outlive the program). A strategy
// without its counts (or a selector without its per-token note) is refused with an InternalError
// naming it, at start-up, rather than failing later where the count is asked for.
void register_strategy_info(const ExpertInfo* s);
void register_strategy_info(const ScorerInfo* s);
void register_strategy_info(const SelectorInfo* s);
void register_strategy_info(const AuxLossInfo* s);

// Every registered strategy of a family, by `order`.
const std::vector<const ExpertInfo*>& expert_strategies();
const std::vector<const ScorerInfo*>& scorer_strategies();
const std::vector<const SelectorInfo*>& selector_strategies();
const std::vector<const AuxLossInfo*>& aux_loss_strategies();

// The chosen strategy; throws UserError naming the key and the registered names when the type is
// not one (load_config() already refuses that; a Config built in code may not).
const ExpertInfo& expert_of(const MoeConfig& m);
const ScorerInfo& scorer_of(const MoeConfig& m);
const SelectorInfo& selector_of(const MoeConfig& m);
// The auxiliary losses whose coefficient is active, in order (a dense model has none).
std::vector<const AuxLossInfo*> active_aux_losses(const MoeConfig& m);

// The names of a family, in order, "a, b or c" (error messages).
std::string strategy_names(Family f);

// The strategies' keys (the type keys first in each family) and rules, in family order; the
// schema and the rules table include them (schema.cpp, rules_moe.cpp), which build once, on
// first use in main() or a test: every strategy has registered by then (static initialisation).
std::vector<KeySpec> strategy_keys();
std::vector<CrossRule> strategy_rules();

}  // namespace am
