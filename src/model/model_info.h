// Facts about a model that do not need it built: parameter counts and the HF-style config.json.
#pragma once

#include "config/config.h"
#include "core/tensor.h"

#include <nlohmann/json.hpp>

namespace am {

struct ParamCounts {
  // Every parameter, each once (a tied embedding once): per layer the two norms, attention, the
  // scorer (router [n + n_null, d]; large_router A [h, d] + B [n + n_null, h]; act_norm: n_null
  // null scores) and n experts (swiglu 3 d d_ffn; factorized d d_low + d_low w + 2 d w with
  // w = hidden_width); embedding, final norm, and the LM head unless tied. The
  // aux-loss-free bias is not a parameter.
  int64_t total = 0;
  // What one token's forward pass uses, with the NOMINAL number of experts per token (topk: k,
  // null slots counted as true experts, at most n: an upper bound; topp: max_k, or n when 0;
  // expert_choice: capacity_factor, fractional, rounded at the end; dense: 1), whole experts (an
  // AoE token also computes every expert's latent x W_down, which this does not count, as in
  // the AoE paper), and the embedding matrix counted twice, as the input embedding and as the LM
  // head, tied or not: the convention that gives the AoE paper's 732M total / 247M active.
  int64_t active = 0;
};

// By formula (a test holds it to the parameter table the Transformer builds).
ParamCounts count_params(const ModelConfig& m);

// config.json beside exported weights: HF Mixtral keys (Llama keys for a dense model) plus an
// "autonomoe" object with the project's own keys.
nlohmann::json hf_config_json(const ModelConfig& m, DType dtype);

}  // namespace am
