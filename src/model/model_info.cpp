#include "model/model_info.h"

#include <algorithm>
#include <cmath>

#include "config/strategy.h"

namespace am {

ParamCounts count_params(const ModelConfig& m) {
  const MoeConfig& moe = m.moe;
  const int64_t d = m.d_model, V = m.vocab_size, L = m.n_layers, hd = m.head_dim();
  const int64_t n = moe.n_experts;
  // Per layer: the scorer's parameters; per expert: the expert's (both from the strategies,
  // config/strategy.h); per token: the experts a token's forward uses, at most or on average.
  const int64_t scorer = scorer_of(moe).params(moe, m.d_model);
  const int64_t expert = expert_of(moe).params(moe, m.d_model);
  const double per_token = moe.dense() ? 1.0 : selector_of(moe).experts_per_token(moe);

  const int64_t attn = d * hd * (2 * m.n_heads + 2 * m.kv_heads());  // q, o and k, v
  const int64_t layer_shared = 2 * d + attn + scorer;                // + the two RMSNorms
  ParamCounts c;
  c.total = V * d * (m.tie_embeddings ? 1 : 2) + d + L * (layer_shared + n * expert);
  c.active =
      2 * V * d + d + L * layer_shared + std::llround(static_cast<double>(L) * per_token * static_cast<double>(expert));
  return c;
}

nlohmann::json hf_config_json(const ModelConfig& m, DType dtype) {
  const MoeConfig& moe = m.moe;
  const bool dense = moe.dense();
  // Only a plain router + top-k + SwiGLU model has Mixtral's weights; other MoE models say so.
  const bool mixtral =
      !dense && scorer_of(moe).mixtral_layout && expert_of(moe).mixtral_layout && selector_of(moe).mixtral_routing(moe);
  nlohmann::json j;
  j["architectures"] = {dense ? "LlamaForCausalLM" : mixtral ? "MixtralForCausalLM" : "AutonomoeMoeForCausalLM"};
  j["model_type"] = dense ? "llama" : mixtral ? "mixtral" : "autonomoe_moe";
  j["hidden_size"] = m.d_model;
  j["intermediate_size"] = dense ? moe.d_ffn : moe.hidden_width(m.d_model);
  j["num_hidden_layers"] = m.n_layers;
  j["num_attention_heads"] = m.n_heads;
  j["num_key_value_heads"] = m.kv_heads();
  j["head_dim"] = m.head_dim();
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = m.norm_eps;
  j["rope_theta"] = m.rope_theta;
  j["vocab_size"] = m.vocab_size;
  j["tie_word_embeddings"] = m.tie_embeddings;
  j["max_position_embeddings"] = m.max_seq_len;
  j["initializer_range"] = m.init_std;
  j["attention_bias"] = false;
  j["torch_dtype"] = dtype == DType::F64 ? "float64" : dtype == DType::BF16 ? "bfloat16" : "float32";
  if (!dense) {
    j["num_local_experts"] = moe.n_experts;
    j["num_experts_per_tok"] = moe.selector.k;
    j["router_aux_loss_coef"] = moe.aux.load_balance.at(0);
    j["output_router_logits"] = false;
  }
  auto schedule = [](const Schedule& s) {
    nlohmann::json pts = nlohmann::json::array();
    for (const auto& [step, v] : s.points) pts.push_back({step, v});
    return pts;
  };
  j["autonomoe"] = {
      {"expert", {{"type", moe.expert.type}, {"d_low", moe.expert.d_low}, {"d_wide", moe.hidden_width(m.d_model)}}},
      {"scorer",
       {{"type", moe.scorer.type},
        {"node", moe.scorer.node},
        {"norm", moe.scorer.norm},
        {"d_hidden", moe.scorer.d_hidden},
        {"activation", moe.scorer.activation}}},
      {"selector",
       {{"type", moe.selector.type},
        {"k", moe.selector.k},
        {"gate", moe.selector.gate},
        {"capacity_factor", moe.selector.capacity_factor},
        {"p", moe.selector.p},
        {"renormalize", moe.selector.renormalize},
        {"max_k", moe.selector.max_k},
        {"group", moe.selector.group},
        {"n_null", moe.selector.n_null}}},
      {"n_experts", moe.n_experts},
      {"aux",
       {{"load_balance", schedule(moe.aux.load_balance)},
        {"null_load_balance", schedule(moe.aux.null_load_balance)},
        {"z_loss", schedule(moe.aux.z_loss)},
        {"entropy", schedule(moe.aux.entropy)},
        {"bias_update_rate", moe.aux.bias_update_rate}}},
  };
  return j;
}

}  // namespace am
