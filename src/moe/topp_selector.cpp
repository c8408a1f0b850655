// Selector topp: each token the fewest experts whose probability reaches p (TopPSelector,
// selector.h; Huang et al. 2024).
#include <fmt/format.h>

#include <algorithm>

#include "moe/strategies.h"

namespace am {

void TopPSelector::select(Tensor, Tensor, Tensor probs, Tensor slot_expert, Tensor slot_gate) {
  be_.topp_select(slot_expert, slot_gate, probs, p_, renorm_);
}

void TopPSelector::backward(Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor probs, Tensor,
                            Tensor dprobs) {
  be_.topp_select_backward(dprobs, dslot_gate, slot_expert, slot_gate, probs, renorm_);
}

namespace {

using Msg = std::optional<std::string>;

int cap(const MoeConfig& m) { return m.selector.max_k > 0 ? std::min(m.selector.max_k, m.n_experts) : m.n_experts; }

const bool kRegistered = register_strategy([] {
  SelectorStrategy s;
  s.name = "topp";
  s.order = 2;
  s.doc = "each token the fewest whose probability reaches p";
  s.keys = {
      config_key("model.moe.selector.p", "0.6", open_closed(0, 1),
                 "(topp) a token keeps the smallest set of experts whose probability reaches p",
                 AM_FIELD(model.moe.selector.p)),
      config_key("model.moe.selector.renormalize", "false", Range{},
                 "(topp) gate weights of the kept experts sum to 1; false = raw probabilities",
                 AM_FIELD(model.moe.selector.renormalize)),
      config_key("model.moe.selector.max_k", "0", at_least(0), "(topp) most experts per token; 0 = n_experts",
                 AM_FIELD(model.moe.selector.max_k)),
  };
  s.rules = {
      {"model.moe.selector.max_k is at most model.moe.n_experts (topp)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (m.selector.type != "topp" || m.selector.max_k <= m.n_experts) return std::nullopt;
         return fmt::format("{} must be <= {} (0 = no cap)", show("model.moe.selector.max_k"),
                            show("model.moe.n_experts"));
       }},
  };
  s.experts_per_token = [](const MoeConfig& m) { return static_cast<double>(cap(m)); };
  s.per_token_note = [](const MoeConfig& m) {
    return fmt::format("{} experts per token: an upper bound, top-p picks a data-dependent number",
                       m.selector.max_k > 0 ? m.selector.max_k : m.n_experts);
  };
  s.make = [](Backend& be, const SelectorArgs& a) -> std::unique_ptr<Selector> {
    const SelectorConfig& c = a.moe.selector;
    return std::make_unique<TopPSelector>(be, c.p, c.max_k > 0 ? c.max_k : a.moe.n_experts, c.renormalize);
  };
  return s;
}());

}  // namespace

}  // namespace am
