#include "model/model_info.h"

namespace am {

ParamCounts count_params(const ModelConfig& m) {
  const int64_t d = m.d_model, V = m.vocab_size, L = m.n_layers, hd = m.head_dim();
  const int64_t n = m.moe.n_experts, f = m.moe.d_ffn;
  const bool dense = m.moe.scorer.type == "none";
  const int64_t attn = d * hd * (2 * m.n_heads + 2 * m.kv_heads());  // q, o and k, v
  const int64_t expert = 3 * d * f;
  const int64_t router = dense ? 0 : n * d;
  const int64_t k = dense ? 1 : m.moe.selector.k;
  const int64_t embed = V * d * (m.tie_embeddings ? 1 : 2);
  ParamCounts c;
  c.total = embed + d + L * (2 * d + attn + router + n * expert);
  c.active = c.total - L * (n - k) * expert;
  return c;
}

nlohmann::json hf_config_json(const ModelConfig& m, DType dtype) {
  const bool dense = m.moe.scorer.type == "none";
  nlohmann::json j;
  j["architectures"] = {dense ? "LlamaForCausalLM" : "MixtralForCausalLM"};
  j["model_type"] = dense ? "llama" : "mixtral";
  j["hidden_size"] = m.d_model;
  j["intermediate_size"] = m.moe.d_ffn;
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
    j["num_local_experts"] = m.moe.n_experts;
    j["num_experts_per_tok"] = m.moe.selector.k;
    j["router_aux_loss_coef"] = m.moe.aux.load_balance.at(0);
    j["output_router_logits"] = false;
  }
  j["autonomoe"] = {
      {"scorer", m.moe.scorer.type},
      {"selector", m.moe.selector.type},
      {"top_k", m.moe.selector.k},
      {"n_experts", m.moe.n_experts},
      {"aux", {{"load_balance", m.moe.aux.load_balance.at(0)}, {"z_loss", m.moe.aux.z_loss.at(0)}}},
  };
  return j;
}

}  // namespace am
