// SiLU and SwiGLU: silu(x) = x sigmoid(x); h = SiLU(g) * u with the gate g and the up projection
// u as separate (M,f) matrices. Element-wise, computed in T (no reduction to protect; expf is
// much cheaper than exp). With s = sigmoid(x): silu'(x) = s (1 + x (1 - s)).
#pragma once

#include <cstdint>

namespace am::cpu {

// y (n) write = silu(x); y may alias x.
template <typename T>
void silu_forward(T* y, const T* x, int64_t n);
// dx (n) acc += dy * silu'(x).
template <typename T>
void silu_backward(T* dx, const T* dy, const T* x, int64_t n);

// h (n) write = silu(g) * u; g, u (n).
template <typename T>
void swiglu_forward(T* h, const T* g, const T* u, int64_t n);
// dg, du (n) write: dg = dh * u * silu'(g), du = dh * silu(g).
template <typename T>
void swiglu_backward(T* dg, T* du, const T* dh, const T* g, const T* u, int64_t n);

}  // namespace am::cpu
