// A strategy of the MoE layer is registered by the one file that implements it: its config keys,
// rules, counts and traits (config/strategy.h) and here its factory. The file ends with
//
//   const bool kRegistered = register_strategy([] {
//     SelectorStrategy s;
//     s.name = "topk";  s.order = 1;  s.doc = "each token its k best";
//     s.keys = {...};  s.rules = {...};  s.experts_per_token = ...;
//     s.make = [](Backend& be, const SelectorArgs& a) { return std::make_unique<TopKSelector>(...); };
//     return s;
//   }());
//
// which runs during static initialisation (the core library is linked whole: CMakeLists.txt).
// make_moe_components() (components.cpp) builds a layer from the chosen strategies; nothing else
// names them. docs/architecture.md, "Adding a selector", walks through one.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "config/strategy.h"
#include "moe/aux_loss.h"
#include "moe/experts.h"
#include "moe/scorer.h"
#include "moe/selector.h"

namespace am {

// What a factory gets: the model config and the layer's parameter naming and initialisation.
struct ExpertArgs {
  const ModelConfig& cfg;
  const ExpertNames& names;
  ExpertShard shard;
  double init_std, out_std;  // out_std: the output projection's (init_std / sqrt(2 n_layers))
};
struct ScorerArgs {
  const ModelConfig& cfg;
  const std::string& prefix;  // "model.layers.<l>.block_sparse_moe"
  double init_std;
  Experts* experts;  // the layer's experts (activation norms read them)
};
struct SelectorArgs {
  const MoeConfig& moe;
  int64_t seq_len;  // tokens per sequence (expert choice's group: sequence)
};

struct ExpertStrategy : ExpertInfo {
  std::function<std::unique_ptr<Experts>(Backend&, const ExpertArgs&)> make;
};
struct ScorerStrategy : ScorerInfo {
  std::function<std::unique_ptr<Scorer>(Backend&, const ScorerArgs&)> make;  // empty for none (dense)
};
struct SelectorStrategy : SelectorInfo {
  std::function<std::unique_ptr<Selector>(Backend&, const SelectorArgs&)> make;
};
struct AuxLossStrategy : AuxLossInfo {
  std::function<std::unique_ptr<AuxLoss>(Backend&, const MoeConfig&)> make;
};

// Keep the strategy for the program's life and register it with config/ (keys, rules, traits) and
// here (factory). Returns true, for `const bool kRegistered = register_strategy(...)`.
bool register_strategy(ExpertStrategy s);
bool register_strategy(ScorerStrategy s);
bool register_strategy(SelectorStrategy s);
bool register_strategy(AuxLossStrategy s);

// The chosen strategy with its factory (the registered info of expert_of(m), ... is one of these).
const ExpertStrategy& expert_strategy(const MoeConfig& m);
const ScorerStrategy& scorer_strategy(const MoeConfig& m);
const SelectorStrategy& selector_strategy(const MoeConfig& m);
const AuxLossStrategy& aux_loss_strategy(const AuxLossInfo& info);

}  // namespace am
