// Selector topk: each token its k best experts (TopKSelector, selector.h), with null experts
// (AdaMoE), two gate kinds and an optional capacity.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "moe/strategies.h"

namespace am {

Tensor TopKSelector::identity_slots(int64_t n_slots) {
  if (slots_.empty() || slots_.t().numel() != n_slots) {
    std::vector<int32_t> ids(static_cast<size_t>(n_slots));
    std::iota(ids.begin(), ids.end(), 0);
    slots_ = TensorBuf(be_, DType::I32, {n_slots});
    be_.upload(slots_, ids.data());
  }
  return slots_;
}

// A (N,k) slot array seen as N*k rows of blocks of width 1 (for gather_blocks on P).
static Tensor slot_column(Tensor slot_gate) { return Tensor(slot_gate.data, slot_gate.dtype, {slot_gate.numel(), 1}); }

void TopKSelector::select(Tensor rank_scores, Tensor scores, Tensor probs, Tensor slot_expert, Tensor slot_gate) {
  be_.topk_select(slot_expert, slot_gate, rank_scores, scores, k_, n_true_);
  if (!softmax_all_) return;
  // gate[t][j] = P[t][slot_expert[t][j]]: P (N, n+m) is N rows of n+m blocks of width 1.
  // A null slot gets its probability too; it is never used (null experts compute nothing).
  be_.gather_blocks(slot_column(slot_gate), probs, identity_slots(slot_gate.numel()), slot_expert);
}

void TopKSelector::backward(Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor, Tensor dscores,
                            Tensor dprobs) {
  if (!softmax_all_) {
    be_.topk_select_backward(dscores, dslot_gate, slot_expert, slot_gate, n_true_);
    return;
  }
  // dP[t][slot_expert[t][j]] += dgate[t][j] (a null or dropped slot's dgate is 0: no output)
  be_.scatter_blocks_add(dprobs, slot_column(dslot_gate), identity_slots(dslot_gate.numel()), slot_expert);
}

int64_t TopKSelector::capacity(int64_t n_tokens) const {
  if (cf_ <= 0) return 0;
  return static_cast<int64_t>(std::ceil(cf_ * static_cast<double>(n_tokens) * k_ / n_true_));
}

namespace {

using Msg = std::optional<std::string>;

std::vector<KeySpec> topk_keys() {
  return {
      config_key("model.moe.selector.k", "2", at_least(1), "(topk) experts per token, null experts included",
                 AM_FIELD(model.moe.selector.k)),
      config_enum_key("model.moe.selector.gate", "renormalized", {"renormalized", "softmax_all"},
                      "(topk) gate weights: renormalized = softmax of the scores over the selected true "
                      "experts (Mixtral; AoE's plain-PyTorch release); softmax_all = the selected "
                      "experts' probabilities P = softmax over all columns, not renormalised (AoE's "
                      "megablocks release)",
                      AM_FIELD(model.moe.selector.gate)),
      config_key("model.moe.selector.capacity_factor", "0.0", at_least(0),
                 "topk: each expert takes at most ceil(CF * tokens * k / n_experts) tokens, 0 = "
                 "dropless; expert_choice (must be > 0): each expert takes round(CF * group tokens / "
                 "n_experts) tokens",
                 AM_FIELD(model.moe.selector.capacity_factor)),
      config_key("model.moe.selector.n_null", "0", at_least(0),
                 "(topk) null experts (AdaMoE): zero-output experts a token may pick instead of true "
                 "ones; 0 = none",
                 AM_FIELD(model.moe.selector.n_null)),
  };
}

std::vector<CrossRule> topk_rules() {
  return {
      {"model.moe.selector.k is at most model.moe.n_experts + model.moe.selector.n_null (topk in "
       "an MoE model; a dense model has no selector)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (m.selector.type != "topk") return std::nullopt;
         if (m.selector.k <= m.n_experts + m.selector.n_null) return std::nullopt;
         if (m.selector.n_null == 0) {
           return fmt::format("{} must be <= {} (a token cannot pick more experts than exist)",
                              show("model.moe.selector.k"), show("model.moe.n_experts"));
         }
         return fmt::format(
             "{} must be <= {} + {} = {} (a token cannot pick more experts, null experts "
             "included, than exist)",
             show("model.moe.selector.k"), show("model.moe.n_experts"), show("model.moe.selector.n_null"),
             m.n_experts + m.selector.n_null);
       }},
      {"model.moe.selector.gate is renormalized unless model.moe.selector.type is topk (topp "
       "has model.moe.selector.renormalize; expert_choice gates are always the probabilities)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const SelectorConfig& s = c.model.moe.selector;
         if (s.gate == "renormalized" || s.type == "topk") return std::nullopt;
         return fmt::format(
             "{} needs model.moe.selector.type: topk, but {}: top-p gates are the "
             "probabilities unless model.moe.selector.renormalize is true, and expert-choice "
             "gates are always the probabilities; remove gate",
             show("model.moe.selector.gate"), show("model.moe.selector.type"));
       }},
      {"model.moe.selector.n_null > 0 only with model.moe.selector.type topk",
       [](const Config& c, const ShowKey& show) -> Msg {
         const SelectorConfig& s = c.model.moe.selector;
         if (s.n_null == 0 || s.type == "topk") return std::nullopt;
         return fmt::format(
             "{} needs model.moe.selector.type: topk (null experts are picked by top-k, as in "
             "AdaMoE), but {}; set n_null: 0 or type: topk",
             show("model.moe.selector.n_null"), show("model.moe.selector.type"));
       }},
  };
}

const bool kRegistered = register_strategy([] {
  SelectorStrategy s;
  s.name = "topk";
  s.order = 1;
  s.doc = "each token its k best";
  s.keys = topk_keys();
  s.rules = topk_rules();
  // Null slots are counted as true experts: an upper bound.
  s.experts_per_token = [](const MoeConfig& m) { return static_cast<double>(std::min(m.selector.k, m.n_experts)); };
  s.per_token_note = [](const MoeConfig& m) {
    if (m.selector.n_null > 0) {
      return fmt::format("k = {} experts per token: an upper bound, null experts compute nothing", m.selector.k);
    }
    return fmt::format("k = {} experts per token", m.selector.k);
  };
  s.drops_tokens = [](const MoeConfig& m) { return m.selector.capacity_factor > 0; };
  s.selection_bias = true;
  // Mixtral's gates are the renormalised top-k probabilities (softmax_all's are not), and it has no
  // null experts, capacity or selection bias.
  s.mixtral_routing = [](const MoeConfig& m) {
    return m.selector.gate == "renormalized" && m.selector.n_null == 0 && m.selector.capacity_factor == 0 &&
           m.aux.bias_update_rate == 0;
  };
  s.make = [](Backend& be, const SelectorArgs& a) -> std::unique_ptr<Selector> {
    const SelectorConfig& c = a.moe.selector;
    return std::make_unique<TopKSelector>(be, c.k, a.moe.n_experts, c.capacity_factor, c.gate == "softmax_all");
  };
  return s;
}());

}  // namespace

}  // namespace am
