// Transformer's private block (its parameter indices and saved activations), shared by
// model/transformer.cpp and the incremental decoder (model/decode.cpp).
#pragma once

#include "model/transformer.h"

namespace am {

struct Transformer::Layer {
  int ln1, wqkv, wo, ln2;  // parameter indices (wqkv: q, k, v declared back to back)
  int last = -1;           // the layer's tensors are [ln1, last] of the table
  std::unique_ptr<MoeLayer> moe;
  TensorBuf ln1_out, rstd1;  // (N,d), (N)
  TensorBuf qkv;             // (N, qkv_dim), after RoPE
  TensorBuf att, lse;        // (N, H*hd), (B,H,T)
  TensorBuf res_mid;         // (N,d): x + Attn(...)
  TensorBuf ln2_out, rstd2;  // (N,d), (N)
  TensorBuf moe_out;         // (N,d)
};

}  // namespace am
