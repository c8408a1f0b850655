// SwiGLU: h = SiLU(gate) * up, with gu (M, 2f) holding the gate half first, then the up half.
#pragma once

#include <cstdint>

namespace am::cpu {

// h (M,f) write, gu (M,2f).
template <typename T>
void swiglu_forward(T* h, const T* gu, int64_t M, int64_t f);
// Element-wise, computed in T (no reduction to protect; expf is much cheaper than exp).
// dgu (M,2f) write, dh (M,f), gu (M,2f). With s = sigmoid(gate):
//   dgate = dh * up * s * (1 + gate (1 - s)) ;  dup = dh * gate * s
template <typename T>
void swiglu_backward(T* dgu, const T* dh, const T* gu, int64_t M, int64_t f);

}  // namespace am::cpu
