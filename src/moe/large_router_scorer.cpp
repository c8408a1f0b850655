// Scorer large_router: z = SiLU(h A^T) B^T (or linear), P = softmax(z) (LargeRouterScorer,
// scorer.h; AoE Table 2 config 4).
#include <fmt/format.h>

#include "moe/scorer.h"
#include "moe/strategies.h"

namespace am {

LargeRouterScorer::LargeRouterScorer(Backend& be, std::string prefix, int n_total, int hidden, int d_model,
                                     double init_std, bool linear)
    : be_(be),
      prefix_(std::move(prefix)),
      nt_(n_total),
      hid_(hidden),
      d_(d_model),
      init_std_(init_std),
      linear_(linear) {}

void LargeRouterScorer::register_params(ParamTable& table) {
  a_index_ = table.add(prefix_ + ".gate.w_in.weight", {hid_, d_}, Init::Normal, init_std_);
  b_index_ = table.add(prefix_ + ".gate.w_out.weight", {nt_, hid_}, Init::Normal, init_std_);
}

void LargeRouterScorer::bind(ParamStore& store) {
  a_ = store.value(a_index_);
  da_ = store.grad(a_index_);
  b_ = store.value(b_index_);
  db_ = store.grad(b_index_);
}

void LargeRouterScorer::allocate(int64_t n_tokens) {
  for (TensorBuf* t : {&pre_, &dact_}) *t = TensorBuf(be_, be_.dtype(), {n_tokens, hid_});
  if (linear_) return;  // the hidden layer is pre_ itself, and its gradient dact_
  for (TensorBuf* t : {&act_, &dpre_}) *t = TensorBuf(be_, be_.dtype(), {n_tokens, hid_});
}

void LargeRouterScorer::forward(Tensor h, Tensor scores, Tensor probs) {
  be_.matmul(pre_, h, false, a_, true, 1.0, 0.0);  // (N, hidden) = h A^T
  if (!linear_) be_.silu_forward(act_, pre_);
  const Tensor act = linear_ ? pre_ : act_;
  be_.matmul(scores, act, false, b_, true, 1.0, 0.0);  // z (N, n+m) = act B^T
  be_.softmax_rows(probs, scores);
}

void LargeRouterScorer::backward(Tensor h, Tensor scores, Tensor probs, Tensor dscores, Tensor dprobs, Tensor dh) {
  be_.softmax_rows_backward(dscores, dprobs, probs);                       // dz
  be_.matmul(db_, dscores, true, linear_ ? pre_ : act_, false, 1.0, 1.0);  // dB (n+m, hidden) += dz^T act
  be_.matmul(dact_, dscores, false, b_, false, 1.0, 0.0);                  // dact (N, hidden) = dz B
  Tensor dpre = dact_;                                                     // linear: dpre = dact
  if (!linear_) {
    be_.zero(dpre_);
    be_.silu_backward(dpre_, dact_, pre_);
    dpre = dpre_;
  }
  be_.matmul(da_, dpre, true, h, false, 1.0, 1.0);   // dA (hidden, d) += dpre^T h
  be_.matmul(dh, dpre, false, a_, false, 1.0, 1.0);  // dh += dpre A
}

namespace {

using Msg = std::optional<std::string>;

int hidden(const MoeConfig& m) { return m.scorer.d_hidden > 0 ? m.scorer.d_hidden : m.n_experts * m.expert.d_low; }

std::vector<CrossRule> large_router_rules() {
  return {
      {"model.moe.scorer.type large_router needs model.moe.scorer.d_hidden > 0 or "
       "model.moe.expert.d_low > 0 (then d_hidden = n_experts * d_low)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (m.scorer.type != "large_router" || m.scorer.d_hidden > 0 || m.expert.d_low > 0) return std::nullopt;
         return fmt::format(
             "{} needs a hidden width, but {} and {}: set model.moe.scorer.d_hidden > 0, or "
             "model.moe.expert.d_low > 0 (d_hidden = n_experts * d_low; AoE's Table 2 uses 8 * "
             "256)",
             show("model.moe.scorer.type"), show("model.moe.scorer.d_hidden"), show("model.moe.expert.d_low"));
       }},
      {"model.moe.scorer.d_hidden is 0 unless model.moe.scorer.type is large_router",
       [](const Config& c, const ShowKey& show) -> Msg {
         const ScorerConfig& s = c.model.moe.scorer;
         if (s.d_hidden == 0 || s.type == "large_router") return std::nullopt;
         return fmt::format(
             "{} has no effect with {}: only a large_router has a hidden layer; remove d_hidden, "
             "or set model.moe.scorer.type: large_router",
             show("model.moe.scorer.d_hidden"), show("model.moe.scorer.type"));
       }},
      {"model.moe.scorer.activation is silu unless model.moe.scorer.type is large_router",
       [](const Config& c, const ShowKey& show) -> Msg {
         const ScorerConfig& s = c.model.moe.scorer;
         if (s.activation == "silu" || s.type == "large_router") return std::nullopt;
         return fmt::format(
             "{} has no effect with {}: only a large_router has a hidden layer; remove "
             "activation, or set model.moe.scorer.type: large_router",
             show("model.moe.scorer.activation"), show("model.moe.scorer.type"));
       }},
  };
}

const bool kRegistered = register_strategy([] {
  ScorerStrategy s;
  s.name = "large_router";
  s.order = 2;
  s.doc = "SiLU(x A) B (d_hidden wide)";
  s.keys = {
      config_key("model.moe.scorer.d_hidden", "0", at_least(0),
                 "(large_router) hidden width of the router; 0 = n_experts * expert.d_low",
                 AM_FIELD(model.moe.scorer.d_hidden)),
      config_enum_key("model.moe.scorer.activation", "silu", {"silu", "linear"},
                      "(large_router) the hidden layer's activation: silu = SiLU(x A) B; linear = "
                      "(x A) B, no activation (the AoE authors' BigRouter: d_hidden 1012)",
                      AM_FIELD(model.moe.scorer.activation)),
  };
  s.rules = large_router_rules();
  s.params = [](const MoeConfig& m, int d_model) -> int64_t {
    const int64_t h = hidden(m), rows = m.n_experts + m.selector.n_null;
    return h * d_model + rows * h;  // A [h, d], B [n + n_null, h]
  };
  s.logits = true;
  s.make = [](Backend& be, const ScorerArgs& a) -> std::unique_ptr<Scorer> {
    const MoeConfig& m = a.cfg.moe;
    return std::make_unique<LargeRouterScorer>(be, a.prefix, m.n_experts + m.selector.n_null, hidden(m), a.cfg.d_model,
                                               a.init_std, m.scorer.activation == "linear");
  };
  return s;
}());

}  // namespace

}  // namespace am
