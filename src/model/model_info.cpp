#include "model/model_info.h"

#include <algorithm>
#include <cmath>

namespace am {

ParamCounts count_params(const ModelConfig& m) {
  const MoeConfig& moe = m.moe;
  const int64_t d = m.d_model, V = m.vocab_size, L = m.n_layers, hd = m.head_dim();
  const int64_t n = moe.n_experts;
  const bool dense = moe.scorer.type == "none";
  const int64_t rows = n + (dense ? 0 : moe.selector.n_null);  // router outputs, null experts too

  // The scorer's parameters, per layer.
  int64_t scorer = 0;
  if (moe.scorer.type == "router") {
    scorer = rows * d;  // W_r [n + n_null, d]
  } else if (moe.scorer.type == "large_router") {
    const int64_t h = moe.scorer.d_hidden > 0 ? moe.scorer.d_hidden : n * moe.expert.d_low;
    scorer = h * d + rows * h;  // A [h, d], B [n + n_null, h]
  } else if (moe.scorer.type == "act_norm") {
    scorer = dense ? 0 : moe.selector.n_null;  // one learnable score per null expert
  }

  // One expert's parameters.
  int64_t expert = 3 * d * moe.d_ffn;  // w1, w3 [d_ffn, d], w2 [d, d_ffn]
  if (moe.expert.type == "factorized") {
    const int64_t low = moe.expert.d_low, w = moe.hidden_width(m.d_model);
    expert = d * low + low * w + 2 * d * w;  // w1_down [low, d], w1_up [w, low], w3, w2
  }

  // Nominal experts per token: what a token's forward uses at most / on average.
  double per_token = 1;  // dense
  if (!dense && moe.selector.type == "topk") {
    per_token = static_cast<double>(std::min<int64_t>(moe.selector.k, n));  // null slots as true
  } else if (!dense && moe.selector.type == "topp") {
    const int64_t cap = moe.selector.max_k > 0 ? std::min<int64_t>(moe.selector.max_k, n) : n;
    per_token = static_cast<double>(cap);
  } else if (!dense && moe.selector.type == "expert_choice") {
    per_token = std::min(moe.selector.capacity_factor, static_cast<double>(n));  // CF on average
  }

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
  const bool dense = moe.scorer.type == "none";
  // Only a plain router + top-k + SwiGLU model has Mixtral's weights; other MoE models say so.
  const bool mixtral = !dense && moe.scorer.type == "router" && moe.expert.type == "swiglu" &&
                       moe.selector.type == "topk" && moe.selector.n_null == 0 && moe.selector.capacity_factor == 0 &&
                       moe.aux.bias_update_rate == 0;
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
