// The tensor-core attention kernels (attention_tc.cu), which attention.cu's attention_forward and
// attention_backward dispatch to when the backend runs bf16 matrix products (run.precision: bf16).
// Shapes are checked by the caller; tensors as the Backend ops, fp32 except qkv (both) and out
// (the forward), which may be BF16 (bf16 storage: attention.cu passes any other BF16 argument
// through an fp32 copy); delta (B, H, T) = dout . out per row, computed by attention.cu.
#pragma once

#include "core/backend.h"

namespace am::cuda {

void attention_forward_tc(Tensor out, Tensor lse, Tensor qkv, const AttnShape& s);
void attention_backward_tc(Tensor dqkv, Tensor dout, Tensor qkv, Tensor lse, const float* delta, const AttnShape& s);

}  // namespace am::cuda
