// Storage of the registered strategies (strategies.h). Each lives in a deque (stable addresses)
// and config/'s registry points at its info part; the lookups here cast back to the whole.
#include "moe/strategies.h"

#include <deque>

#include "core/error.h"

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

// A strategy without a factory is refused (scorer none aside: the dense FFN is built by
// make_moe_components itself), at start-up rather than when a layer is built.
bool register_strategy(ExpertStrategy s) {
  AM_CHECK(bool(s.make), "expert strategy {} registers no factory", s.name);
  return keep(std::move(s));
}
bool register_strategy(ScorerStrategy s) {
  AM_CHECK(s.make || s.dense, "scorer strategy {} registers no factory", s.name);
  return keep(std::move(s));
}
bool register_strategy(SelectorStrategy s) {
  AM_CHECK(bool(s.make), "selector strategy {} registers no factory", s.name);
  return keep(std::move(s));
}
bool register_strategy(AuxLossStrategy s) {
  AM_CHECK(bool(s.make), "aux loss strategy {} registers no factory", s.name);
  return keep(std::move(s));
}

// Every info in config/'s registry was registered by keep() above, as part of a strategy.
const ExpertStrategy& expert_strategy(const MoeConfig& m) { return static_cast<const ExpertStrategy&>(expert_of(m)); }
const ScorerStrategy& scorer_strategy(const MoeConfig& m) { return static_cast<const ScorerStrategy&>(scorer_of(m)); }
const SelectorStrategy& selector_strategy(const MoeConfig& m) {
  return static_cast<const SelectorStrategy&>(selector_of(m));
}
const AuxLossStrategy& aux_loss_strategy(const AuxLossInfo& info) { return static_cast<const AuxLossStrategy&>(info); }

}  // namespace am
