// The deterministic epoch permutation of the data loader. Documented bit-for-bit (docs/data.md)
// so that any implementation reproduces the same order:
//   generator: splitmix64 (Steele, Lea, Flood 2014; Vigna's reference constants)
//   state0 = mix64(seed ^ mix64(epoch))
//   draw below n: r = next(); reject while r < (2^64 mod n); return r mod n   (unbiased)
//   Fisher-Yates: p = [0, 1, ..., n-1]; for i = n-1 down to 1: j = below(i + 1); swap(p[i], p[j])
#pragma once

#include <cstdint>
#include <vector>

namespace am {

// The splitmix64 finaliser (a bijection of 64-bit words).
uint64_t mix64(uint64_t z);

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t next();
  uint64_t below(uint64_t n);  // uniform in [0, n), n >= 1
 private:
  uint64_t state_;
};

// The permutation of [0, n) for (seed, epoch).
std::vector<uint32_t> epoch_permutation(uint64_t n, uint64_t seed, uint64_t epoch);

}  // namespace am
