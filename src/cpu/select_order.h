// The one order of preference every CPU selection uses (top-k, top-p, expert choice, capacity):
// a higher value first, equal values to the lower index, NaN after every number. It is a strict
// total order on (value, index) pairs with distinct indices, so std::sort / std::nth_element with
// it give the same set and the same order whatever the input order or the thread count.
#pragma once

#include <cmath>
#include <cstdint>

namespace am::cpu {

// True when (va, a) goes before (vb, b).
template <typename T>
inline bool preferred(T va, int64_t a, T vb, int64_t b) {
  const bool na = std::isnan(va), nb = std::isnan(vb);
  if (na != nb) return nb;              // a number before a NaN
  if (!na && va != vb) return va > vb;  // the higher value first
  return a < b;                         // ties (and two NaNs): the lower index first
}

}  // namespace am::cpu
