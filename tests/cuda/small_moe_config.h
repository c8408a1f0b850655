// The small MoE transformer of the model-level CUDA tests (model, decode, task scoring): 2 layers,
// 4 query and 2 key/value heads, 4 experts of width 48, top-2; each test adds its strategy and
// losses.
#pragma once

#include "config/config.h"

namespace am::test {

inline ModelConfig small_moe_config(int max_seq_len) {
  ModelConfig m;
  m.vocab_size = 50;
  m.d_model = 32;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.max_seq_len = max_seq_len;
  m.init_std = 0.1;
  m.moe.n_experts = 4;
  m.moe.d_ffn = 48;
  m.moe.selector.k = 2;
  return m;
}

}  // namespace am::test
