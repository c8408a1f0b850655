// Facts about a model that do not need it built: parameter counts and the HF-style config.json.
#pragma once

#include "config/config.h"
#include "core/tensor.h"

#include <nlohmann/json.hpp>

namespace am {

struct ParamCounts {
  int64_t total = 0;   // every parameter, each once (a tied embedding once)
  int64_t active = 0;  // parameters a token's forward pass uses: total minus unselected experts
};

// By formula (a test holds it to the parameter table the Transformer builds).
ParamCounts count_params(const ModelConfig& m);

// config.json beside exported weights: HF Mixtral keys (Llama keys for a dense model) plus an
// "autonomoe" object with the project's own keys.
nlohmann::json hf_config_json(const ModelConfig& m, DType dtype);

}  // namespace am
