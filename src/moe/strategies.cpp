// Storage of the registered strategies (strategies.h). Each lives in a deque (stable addresses)
// and config/'s registry points at its info part; the lookups here cast back to the whole.
#include "moe/strategies.h"

#include <deque>

namespace am {

namespace {

template <typename Strategy>
bool keep(Strategy s) {
  static std::deque<Strategy> kept;
  kept.push_back(std::move(s));
  register_strategy_info(&kept.back());
  return true;
}

}  // namespace

bool register_strategy(ExpertStrategy s) { return keep(std::move(s)); }
bool register_strategy(ScorerStrategy s) { return keep(std::move(s)); }
bool register_strategy(SelectorStrategy s) { return keep(std::move(s)); }
bool register_strategy(AuxLossStrategy s) { return keep(std::move(s)); }

// Every info in config/'s registry was registered by keep() above, as part of a strategy.
const ExpertStrategy& expert_strategy(const MoeConfig& m) { return static_cast<const ExpertStrategy&>(expert_of(m)); }
const ScorerStrategy& scorer_strategy(const MoeConfig& m) { return static_cast<const ScorerStrategy&>(scorer_of(m)); }
const SelectorStrategy& selector_strategy(const MoeConfig& m) {
  return static_cast<const SelectorStrategy&>(selector_of(m));
}
const AuxLossStrategy& aux_loss_strategy(const AuxLossInfo& info) { return static_cast<const AuxLossStrategy&>(info); }

}  // namespace am
