// Selector expert_choice: each expert its best tokens of a group (ExpertChoiceSelector,
// selector.h; Zhou et al. 2022). Not causal: a token's experts depend on the other tokens of its
// group, so generation and multiple-choice scoring refuse it.
#include <fmt/format.h>

#include <algorithm>

#include "moe/strategies.h"

namespace am {

void ExpertChoiceSelector::select(Tensor, Tensor, Tensor probs, Tensor slot_expert, Tensor slot_gate) {
  const int64_t group = group_ > 0 ? group_ : probs.dim(0);
  be_.expert_choice_select(slot_expert, slot_gate, probs, group, expert_choice_capacity(moe_, group));
}

void ExpertChoiceSelector::backward(Tensor dslot_gate, Tensor slot_expert, Tensor, Tensor, Tensor, Tensor dprobs) {
  be_.expert_choice_select_backward(dprobs, dslot_gate, slot_expert);
}

namespace {

using Msg = std::optional<std::string>;

// Tokens an expert-choice expert chooses from: the micro-batch or one sequence.
int64_t group_tokens(const Config& c) {
  const int64_t seq = c.data.seq_len;
  return c.model.moe.selector.group == "batch" ? seq * c.train.micro_batch_size : seq;
}

std::optional<std::string> check_capacity(const Config& c, const ShowKey& show) {
  const MoeConfig& m = c.model.moe;
  if (m.selector.type != "expert_choice") return std::nullopt;
  if (m.selector.capacity_factor <= 0) {
    return fmt::format(
        "{} needs model.moe.selector.capacity_factor > 0 (each expert takes "
        "round(CF * group tokens / n_experts) tokens; the papers use 2), but {}",
        show("model.moe.selector.type"), show("model.moe.selector.capacity_factor"));
  }
  const int64_t g = group_tokens(c), cap = expert_choice_capacity(m, g);
  if (cap >= 1 && cap <= g) return std::nullopt;
  const std::string group = m.selector.group == "batch"
                                ? fmt::format("{} x {}", show("train.micro_batch_size"), show("data.seq_len"))
                                : show("data.seq_len");
  return fmt::format(
      "{} with {} gives each expert round({} * {} / {}) = {} tokens of a group of {} "
      "({}, {}); it must be between 1 and {}: use a capacity_factor between {} and {}",
      show("model.moe.selector.type"), show("model.moe.selector.capacity_factor"), m.selector.capacity_factor, g,
      m.n_experts, cap, g, show("model.moe.selector.group"), group, g,
      static_cast<double>(m.n_experts) / static_cast<double>(g), m.n_experts);
}

const bool kRegistered = register_strategy([] {
  SelectorStrategy s;
  s.name = "expert_choice";
  s.order = 3;
  s.doc = "each expert its best tokens of a group";
  // model.moe.selector.capacity_factor, which it needs, is topk's key (topk_selector.cpp).
  s.keys = {
      config_enum_key("model.moe.selector.group", "batch", {"batch", "sequence"},
                      "(expert_choice) the tokens an expert chooses from: batch = the micro-batch (the "
                      "papers' choice; a token's selection depends on later tokens), sequence = one "
                      "sequence",
                      AM_FIELD(model.moe.selector.group)),
  };
  s.rules = {
      {"model.moe.selector.type expert_choice needs model.moe.selector.capacity_factor > 0 with "
       "round(capacity_factor * group tokens / n_experts) between 1 and the group's tokens "
       "(group batch: train.micro_batch_size * data.seq_len; sequence: data.seq_len)",
       check_capacity},
  };
  s.experts_per_token = [](const MoeConfig& m) {
    return std::min(m.selector.capacity_factor, static_cast<double>(m.n_experts));  // CF on average
  };
  s.per_token_note = [](const MoeConfig& m) {
    return fmt::format("capacity_factor {} experts per token on average", m.selector.capacity_factor);
  };
  s.causal = false;
  s.drops_tokens = [](const MoeConfig&) { return true; };
  s.make = [](Backend& be, const SelectorArgs& a) -> std::unique_ptr<Selector> {
    return std::make_unique<ExpertChoiceSelector>(be, a.moe, a.moe.selector.group == "sequence" ? a.seq_len : 0);
  };
  return s;
}());

}  // namespace

}  // namespace am
