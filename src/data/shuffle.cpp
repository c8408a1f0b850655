#include "data/shuffle.h"

#include <numeric>
#include <utility>

#include "core/error.h"

namespace am {

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::next() {
  state_ += 0x9E3779B97F4A7C15ull;
  return mix64(state_);
}

uint64_t SplitMix64::below(uint64_t n) {
  AM_CHECK(n >= 1, "below({})", n);
  const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
  uint64_t r = next();
  while (r < threshold) r = next();
  return r % n;
}

std::vector<uint32_t> epoch_permutation(uint64_t n, uint64_t seed, uint64_t epoch) {
  AM_CHECK(n <= UINT32_MAX, "{} windows do not fit the uint32 permutation", n);
  std::vector<uint32_t> p(n);
  std::iota(p.begin(), p.end(), 0u);
  SplitMix64 rng(mix64(seed ^ mix64(epoch)));
  for (uint64_t i = n; i-- > 1;) {
    const uint64_t j = rng.below(i + 1);
    std::swap(p[i], p[j]);
  }
  return p;
}

}  // namespace am
