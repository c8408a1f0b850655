// Builds the parts of an MoE layer from model.moe.* (docs/selection.md explains every option).
#include "moe/moe_layer.h"

#include <cmath>

namespace am {

MoeComponents make_moe_components(Backend& be, const ModelConfig& cfg, int layer, int64_t seq_len, ExpertShard shard) {
  const MoeConfig& m = cfg.moe;
  const int d = cfg.d_model, n = m.n_experts, n_null = m.selector.n_null;
  const double std = cfg.init_std, out_std = cfg.init_std / std::sqrt(2.0 * cfg.n_layers);
  const std::string l = "model.layers." + std::to_string(layer);
  MoeComponents c;

  if (m.scorer.type == "none") {  // dense SwiGLU, under Llama's names
    const std::string p = l + ".mlp";
    c.experts = std::make_unique<SwigluExperts>(
        be, ExpertNames{p + ".gate_proj.weight", p + ".up_proj.weight", p + ".down_proj.weight", "", ""},
        ExpertShard{0, 1}, d, m.d_ffn, std, out_std, /*moe=*/false);
    return c;
  }

  const std::string p = l + ".block_sparse_moe";
  const std::string e = p + ".experts.{e}.";
  const ExpertNames names{e + "w1.weight", e + "w3.weight", e + "w2.weight", e + "w1_down.weight", e + "w1_up.weight"};
  const int width = m.hidden_width(d);
  if (shard.count == 0) shard = ExpertShard{0, n};
  if (m.expert.type == "factorized") {
    c.experts = std::make_unique<FactorizedExperts>(be, names, n, shard, d, m.expert.d_low, width, std, out_std);
  } else {
    c.experts = std::make_unique<SwigluExperts>(be, names, shard, d, width, std, out_std);
  }

  if (m.scorer.type == "router") {
    c.scorer = std::make_unique<RouterScorer>(be, p, n, n_null, d, std);
  } else if (m.scorer.type == "large_router") {
    const int hidden = m.scorer.d_hidden > 0 ? m.scorer.d_hidden : n * m.expert.d_low;
    c.scorer = std::make_unique<LargeRouterScorer>(be, p, n + n_null, hidden, d, std, m.scorer.activation == "linear");
  } else if (m.scorer.type == "act_norm") {
    // Null scores start at the scale of the L2 norms at initialisation (||x W_down|| with RMS-normed
    // x: init_std * sqrt(d * d_low)), so null experts are chosen from the start (docs/selection.md).
    const int rank = m.expert.type == "factorized" ? m.expert.d_low : width;
    c.scorer = std::make_unique<ActNormScorer>(be, p, m.scorer.node, norm_kind(m.scorer.norm), n, n_null, d,
                                               std * std::sqrt(static_cast<double>(d) * rank), c.experts.get());
  } else {
    throw UserError(fmt::format("unknown scorer '{}'", m.scorer.type),
                    "valid scorers: router, large_router, act_norm, none");
  }

  const SelectorConfig& s = m.selector;
  if (s.type == "topk") {
    c.selector = std::make_unique<TopKSelector>(be, s.k, n, s.capacity_factor, s.gate == "softmax_all");
  } else if (s.type == "topp") {
    c.selector = std::make_unique<TopPSelector>(be, s.p, s.max_k > 0 ? s.max_k : n, s.renormalize);
  } else if (s.type == "expert_choice") {
    c.selector = std::make_unique<ExpertChoiceSelector>(be, m, s.group == "sequence" ? seq_len : 0);
  } else {
    throw UserError(fmt::format("unknown selector '{}'", s.type), "valid selectors: topk, topp, expert_choice");
  }

  if (m.aux.load_balance.active()) c.aux.push_back(std::make_unique<LoadBalanceLoss>(be, m.aux.load_balance));
  if (m.aux.null_load_balance.active()) {
    c.aux.push_back(std::make_unique<NullLoadBalanceLoss>(be, m.aux.null_load_balance));
  }
  if (m.aux.z_loss.active()) {
    if (!c.scorer->scores_are_logits()) {
      throw UserError("model.moe.aux.z_loss needs router logits", "use it with scorer router or large_router");
    }
    c.aux.push_back(std::make_unique<ZLoss>(be, m.aux.z_loss));
  }
  if (m.aux.entropy.active()) c.aux.push_back(std::make_unique<EntropyLoss>(be, m.aux.entropy));
  return c;
}

}  // namespace am
