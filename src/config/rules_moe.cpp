// Cross-field rules of the MoE layer: experts, scorers, selectors and auxiliary losses
// (docs/configs.md lists them; spec/selection.md has the math). A dense model (scorer none)
// ignores model.moe.selector and model.moe.aux, so the selector and loss rules skip it.
#include <fmt/format.h>

#include "config/schema.h"

namespace am {

namespace {

using Msg = std::optional<std::string>;

bool dense(const Config& c) { return c.model.moe.scorer.type == "none"; }

// Tokens an expert-choice expert chooses from: the micro-batch or one sequence.
int64_t group_tokens(const Config& c) {
  const int64_t seq = c.data.seq_len;
  return c.model.moe.selector.group == "batch" ? seq * c.train.micro_batch_size : seq;
}

std::vector<CrossRule> expert_and_scorer_rules() {
  return {
      {"model.moe.expert.type factorized needs 1 <= model.moe.expert.d_low < model.d_model",
       [](const Config& c, const ShowKey& show) -> Msg {
         const ExpertConfig& e = c.model.moe.expert;
         if (e.type != "factorized" || (e.d_low >= 1 && e.d_low < c.model.d_model)) {
           return std::nullopt;
         }
         return fmt::format(
             "{} needs 1 <= model.moe.expert.d_low < model.d_model, but {} and {} (AoE uses "
             "d_low 64 to 512 with d_model 768)",
             show("model.moe.expert.type"), show("model.moe.expert.d_low"), show("model.d_model"));
       }},
      {"a factorized expert's width d_wide (given, or derived by AoE Eq. 5) is at least 1",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (m.expert.type != "factorized" || m.expert.d_wide > 0 || m.expert.d_low < 1 ||
             m.expert.d_low >= c.model.d_model || m.hidden_width(c.model.d_model) >= 1) {
           return std::nullopt;
         }
         return fmt::format(
             "the d_wide that AoE Eq. 5 derives from {}, {}, {} and {} is {}; it must be >= 1: "
             "set model.moe.expert.d_wide, raise model.moe.d_ffn or lower "
             "model.moe.expert.d_low",
             show("model.d_model"), show("model.moe.d_ffn"), show("model.moe.expert.d_low"),
             show("model.moe.expert.multiple_of"), m.hidden_width(c.model.d_model));
       }},
      {"model.moe.expert.d_low is 0 unless it is used: by expert.type factorized, or to size a "
       "large_router whose d_hidden is 0 (a d_low that changes nothing would suggest an AoE "
       "model that is not there)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         const bool sizes_router = m.scorer.type == "large_router" && m.scorer.d_hidden == 0;
         if (m.expert.d_low == 0 || m.expert.type == "factorized" || sizes_router) {
           return std::nullopt;
         }
         return fmt::format(
             "{} has no effect with {} and {}{}: d_low is the rank of factorized experts "
             "(expert.type: factorized) and sizes a large_router whose d_hidden is 0; set "
             "model.moe.expert.type: factorized, or remove d_low",
             show("model.moe.expert.d_low"), show("model.moe.expert.type"), show("model.moe.scorer.type"),
             m.scorer.type == "large_router" ? " and " + show("model.moe.scorer.d_hidden") : "");
       }},
      {"model.moe.expert.d_wide is 0 unless model.moe.expert.type is factorized",
       [](const Config& c, const ShowKey& show) -> Msg {
         const ExpertConfig& e = c.model.moe.expert;
         if (e.d_wide == 0 || e.type == "factorized") return std::nullopt;
         return fmt::format(
             "{} has no effect with {}: a swiglu expert's width is model.moe.d_ffn; remove "
             "d_wide, or set model.moe.expert.type: factorized",
             show("model.moe.expert.d_wide"), show("model.moe.expert.type"));
       }},
      {"model.moe.scorer.type act_norm with model.moe.scorer.node latent needs "
       "model.moe.expert.type factorized (the latent is x W_down); other nodes are allowed but "
       "evaluation-only: the trainer refuses them",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (m.scorer.type != "act_norm" || m.scorer.node != "latent" || m.expert.type == "factorized") {
           return std::nullopt;
         }
         return fmt::format(
             "{} with {} needs model.moe.expert.type: factorized (the latent x W_down exists "
             "only in factorized experts), but {}",
             show("model.moe.scorer.type"), show("model.moe.scorer.node"), show("model.moe.expert.type"));
       }},
      {"model.moe.scorer.type large_router needs model.moe.scorer.d_hidden > 0 or "
       "model.moe.expert.d_low > 0 (then d_hidden = n_experts * d_low)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (m.scorer.type != "large_router" || m.scorer.d_hidden > 0 || m.expert.d_low > 0) {
           return std::nullopt;
         }
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

std::vector<CrossRule> selector_and_loss_rules() {
  return {
      {"model.moe.selector.k is at most model.moe.n_experts + model.moe.selector.n_null (topk in "
       "an MoE model; a dense model has no selector)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (dense(c) || m.selector.type != "topk") return std::nullopt;
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
         if (dense(c) || s.gate == "renormalized" || s.type == "topk") return std::nullopt;
         return fmt::format(
             "{} needs model.moe.selector.type: topk, but {}: top-p gates are the "
             "probabilities unless model.moe.selector.renormalize is true, and expert-choice "
             "gates are always the probabilities; remove gate",
             show("model.moe.selector.gate"), show("model.moe.selector.type"));
       }},
      {"model.moe.selector.n_null > 0 only with model.moe.selector.type topk",
       [](const Config& c, const ShowKey& show) -> Msg {
         const SelectorConfig& s = c.model.moe.selector;
         if (dense(c) || s.n_null == 0 || s.type == "topk") return std::nullopt;
         return fmt::format(
             "{} needs model.moe.selector.type: topk (null experts are picked by top-k, as in "
             "AdaMoE), but {}; set n_null: 0 or type: topk",
             show("model.moe.selector.n_null"), show("model.moe.selector.type"));
       }},
      {"model.moe.aux.null_load_balance > 0 needs model.moe.selector.n_null > 0",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (dense(c) || !m.aux.null_load_balance.active() || m.selector.n_null > 0) {
           return std::nullopt;
         }
         return fmt::format(
             "{} needs null experts, but {}: set model.moe.selector.n_null > 0, or use "
             "model.moe.aux.load_balance (the plain balancing loss) instead",
             show("model.moe.aux.null_load_balance"), show("model.moe.selector.n_null"));
       }},
      {"with model.moe.selector.n_null > 0, model.moe.aux.load_balance is 0 "
       "(model.moe.aux.null_load_balance, AdaMoE's loss averaged over the null experts, replaces "
       "it)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (dense(c) || m.selector.n_null == 0 || !m.aux.load_balance.active()) {
           return std::nullopt;
         }
         return fmt::format(
             "{} must be 0 with {}: AdaMoE's loss model.moe.aux.null_load_balance (over n_experts "
             "+ n_null, the null experts' loads averaged) replaces it; set "
             "model.moe.aux.load_balance: 0 and model.moe.aux.null_load_balance instead",
             show("model.moe.aux.load_balance"), show("model.moe.selector.n_null"));
       }},
      {"model.moe.aux.z_loss > 0 needs model.moe.scorer.type router or large_router (it "
       "penalises router logits)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (dense(c) || !m.aux.z_loss.active() || m.scorer.type == "router" || m.scorer.type == "large_router") {
           return std::nullopt;
         }
         return fmt::format(
             "{} needs a router scorer (router or large_router; the z-loss penalises router "
             "logits), but {}; set model.moe.aux.z_loss: 0",
             show("model.moe.aux.z_loss"), show("model.moe.scorer.type"));
       }},
      {"model.moe.selector.type expert_choice needs model.moe.selector.capacity_factor > 0 with "
       "round(capacity_factor * group tokens / n_experts) between 1 and the group's tokens "
       "(group batch: train.micro_batch_size * data.seq_len; sequence: data.seq_len)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (dense(c) || m.selector.type != "expert_choice") return std::nullopt;
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
       }},
      {"model.moe.selector.max_k is at most model.moe.n_experts (topp)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (dense(c) || m.selector.type != "topp" || m.selector.max_k <= m.n_experts) {
           return std::nullopt;
         }
         return fmt::format("{} must be <= {} (0 = no cap)", show("model.moe.selector.max_k"),
                            show("model.moe.n_experts"));
       }},
      {"dist.ep divides model.moe.n_experts; a dense model has no experts to split (ep 1)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const int ep = c.dist.ep, n = c.model.moe.n_experts;
         if (ep == 1 || (!dense(c) && n % ep == 0)) return std::nullopt;
         if (dense(c)) return fmt::format("{} needs an MoE model, but the model is dense", show("dist.ep"));
         return fmt::format(
             "{} must divide {} (each rank of an expert-parallel group holds n_experts / ep "
             "experts)",
             show("dist.ep"), show("model.moe.n_experts"));
       }},
      {"model.moe.aux.bias_update_rate > 0 only with model.moe.selector.type topk",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (dense(c) || m.aux.bias_update_rate == 0 || m.selector.type == "topk") {
           return std::nullopt;
         }
         return fmt::format(
             "{} needs model.moe.selector.type: topk (the bias steers top-k selection), but {}; "
             "set bias_update_rate: 0",
             show("model.moe.aux.bias_update_rate"), show("model.moe.selector.type"));
       }},
  };
}

}  // namespace

std::vector<CrossRule> moe_rules() {
  std::vector<CrossRule> rules = expert_and_scorer_rules();
  for (CrossRule& r : selector_and_loss_rules()) rules.push_back(std::move(r));
  return rules;
}

}  // namespace am
