// bfloat16 on the host: the rounding every bf16 path of the project uses (round to nearest, ties
// to even; NaN stays a quiet NaN; values beyond the largest bf16 round to infinity, as IEEE
// rounding does). CUDA's __float2bfloat16_rn rounds the same way, so the CPU emulation of bf16
// matrix products (run.precision: bf16) rounds operands to the same values as the GPU.
#pragma once

#include <cstdint>
#include <cstring>

namespace am {

inline uint16_t f32_to_bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu)) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_bits_to_f32(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// x rounded to the nearest bf16 value, as a float.
inline float bf16_round(float x) { return bf16_bits_to_f32(f32_to_bf16_bits(x)); }

}  // namespace am
