// Counter-based random numbers: every value is a pure function of (key, index), so the initial
// model is the same on every backend, thread count and parallel layout (a rank that owns experts
// 4..7 draws exactly the numbers a single process draws for them).
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace am {

// SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mix.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// FNV-1a 64 of a string (parameter names -> keys).
inline uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

// The key of a named stream under a seed.
inline uint64_t stream_key(uint64_t seed, std::string_view name) {
  return splitmix64(seed ^ splitmix64(fnv1a64(name)));
}

// Uniform double in (0, 1]: 53 random bits of draw `i` of stream `key`.
inline double uniform01(uint64_t key, uint64_t i) {
  uint64_t r = splitmix64(key + splitmix64(i));
  return (static_cast<double>(r >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

// Standard normal number `i` of stream `key` (Box-Muller on draws 2i and 2i+1).
inline double normal01(uint64_t key, uint64_t i) {
  double u1 = uniform01(key, 2 * i);
  double u2 = uniform01(key, 2 * i + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace am
