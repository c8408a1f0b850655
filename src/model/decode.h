// Incremental decoding with a KV cache (docs/sampling.md): a Transformer built for one token
// (B = 1, T = 1) runs every layer on the newest position only; each layer keeps the keys (rotated)
// and values of the positions before it, so a step costs one token's matmuls, norms and MoE layer.
// The attention of the new position: RoPE on its q/k/v row at its position, its k and v appended
// to the cache, then the backend's decode-attention op (one query row against the cached
// positions): O(position) attention work per step, the same sums as the full forward's last row.
// Expert-choice selection is not causal: refused (check_decode_supported).
#pragma once

#include "config/config.h"
#include "core/tensor_buf.h"
#include "model/transformer.h"

#include <cstdint>
#include <vector>

namespace am {

class Decoder {
 public:
  // model: built with micro-batch 1 and sequence length 1; max_len: the positions the cache holds
  // (at most model.max_seq_len).
  Decoder(Transformer& model, int max_len);
  // Reads `token` at the next position and returns the (V) logits that predict the position
  // after it (one download).
  std::vector<double> step(int32_t token);
  int position() const { return pos_; }
  int max_len() const { return max_len_; }
  void reset() { pos_ = 0; }  // a new sequence (the cache is overwritten)

 private:
  void attention(size_t l);  // layer l's attention of position pos_, into its att (1, q_dim)
  Transformer& m_;
  int max_len_, pos_ = 0;
  std::vector<TensorBuf> k_, v_;  // per layer (max_len, kv_dim): the keys (after RoPE) and values
};

// UserError when the model's selection is not causal (expert choice): generation is undefined.
void check_decode_supported(const ModelConfig& model);

}  // namespace am
