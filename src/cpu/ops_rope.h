// Rotary position embedding, rotate-half layout (HF Llama), applied in place to the q and k heads
// of a packed qkv tensor (B,T,qkv_dim); v is untouched. Position = start + index t within the
// sequence (start: the decoder's position of a single row; 0 in training).
// For each q and k head and i < hd/2, angle = (start + t) * theta^(-2i/hd):
//   x'[i] = x[i] cos - x[i + hd/2] sin ;  x'[i + hd/2] = x[i + hd/2] cos + x[i] sin
#pragma once

#include "core/backend.h"

namespace am::cpu {

template <typename T>
void rope_forward(T* qkv, const AttnShape& s, double theta, int64_t start = 0);
// The transpose (inverse) rotation, applied in place to the dq and dk parts of dqkv.
template <typename T>
void rope_backward(T* dqkv, const AttnShape& s, double theta);

}  // namespace am::cpu
