#include "cpu/ops_routing.h"

#include "core/error.h"
#include "cpu/parallel.h"
#include "cpu/slot_ids.h"

#include <algorithm>

namespace am::cpu {

namespace {

// Every slot_assign entry is -1 or a row of [0, A); with `bijective`, rows are owned exactly once.
void check_slot_assign(const int32_t* slot_assign, int64_t slots, int64_t A, bool bijective) {
  std::vector<char> seen(bijective ? static_cast<size_t>(A) : 0, 0);
  for (int64_t i = 0; i < slots; ++i) {
    const int32_t a = slot_assign[i];
    AM_CHECK(a >= -1 && a < A, "slot {} is assigned row {}, outside [-1, {})", i, a, A);
    if (bijective && a >= 0) {
      AM_CHECK(!seen[a], "row {} is owned by two slots (the second is slot {})", a, i);
      seen[a] = 1;
    }
  }
  if (bijective) {
    const auto it = std::find(seen.begin(), seen.end(), 0);
    AM_CHECK(it == seen.end(), "row {} of {} is owned by no slot", it - seen.begin(), A);
  }
}

}  // namespace

int64_t route_build(int32_t* assign_slot, int64_t capacity, int32_t* slot_assign, std::vector<int64_t>& offsets,
                    const int32_t* slot_expert, int64_t N, int64_t kmax, int64_t n_experts) {
  const int64_t slots = N * kmax;
  offsets.assign(static_cast<size_t>(n_experts + 1), 0);
  check_slot_ids(slot_expert, slots, n_experts);
  for (int64_t i = 0; i < slots; ++i) {  // count, shifted by one for the prefix sum
    if (slot_expert[i] >= 0) ++offsets[slot_expert[i] + 1];
  }
  for (int64_t e = 0; e < n_experts; ++e) offsets[e + 1] += offsets[e];
  const int64_t A = offsets[n_experts];
  AM_CHECK(A <= capacity, "{} assignments do not fit assign_slot of {} entries", A, capacity);
  std::vector<int64_t> next(offsets.begin(), offsets.end() - 1);  // next free position per expert
  for (int64_t i = 0; i < slots; ++i) {
    const int32_t e = slot_expert[i];
    if (e < 0) {
      slot_assign[i] = -1;
      continue;
    }
    const int64_t a = next[e]++;
    assign_slot[a] = static_cast<int32_t>(i);
    slot_assign[i] = static_cast<int32_t>(a);
  }
  return A;
}

template <typename T>
void gather_rows(T* out, const T* x, const int32_t* assign_slot, int64_t A, int64_t N, int64_t kmax, int64_t d) {
  for (int64_t a = 0; a < A; ++a) {
    AM_CHECK(assign_slot[a] >= 0 && assign_slot[a] < N * kmax, "assignment {} names slot {}, outside [0, {})", a,
             assign_slot[a], N * kmax);
  }
#pragma omp parallel for schedule(static) if (A * d >= kParallelGrain)
  for (int64_t a = 0; a < A; ++a) {
    const T* src = x + (assign_slot[a] / kmax) * d;
    std::copy(src, src + d, out + a * d);
  }
}

template <typename T>
void combine(T* y, const T* eo, const T* slot_gate, const int32_t* slot_assign, int64_t N, int64_t kmax, int64_t A,
             int64_t d) {
  check_slot_assign(slot_assign, N * kmax, A, false);
#pragma omp parallel for schedule(static) if (N * d >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    const int32_t* sa = slot_assign + t * kmax;
    const T* g = slot_gate + t * kmax;
    for (int64_t c = 0; c < d; ++c) {
      double acc = 0;
      for (int64_t j = 0; j < kmax; ++j) {
        if (sa[j] >= 0) acc += static_cast<double>(g[j]) * eo[sa[j] * d + c];
      }
      y[t * d + c] = static_cast<T>(acc);
    }
  }
}

template <typename T>
void combine_backward(T* deo, T* dslot_gate, const T* dy, const T* eo, const T* slot_gate, const int32_t* slot_assign,
                      int64_t N, int64_t kmax, int64_t A, int64_t d) {
  check_slot_assign(slot_assign, N * kmax, A, true);
#pragma omp parallel for schedule(static) if (N * d >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    const T* g = dy + t * d;
    for (int64_t j = 0; j < kmax; ++j) {
      const int64_t i = t * kmax + j;
      const int32_t a = slot_assign[i];
      if (a < 0) {
        dslot_gate[i] = 0;
        continue;
      }
      const double gate = slot_gate[i];
      const T* e = eo + a * d;
      T* de = deo + a * d;
      double dot = 0;
      for (int64_t c = 0; c < d; ++c) {
        dot += static_cast<double>(g[c]) * e[c];
        de[c] = static_cast<T>(gate * g[c]);
      }
      dslot_gate[i] = static_cast<T>(dot);
    }
  }
}

template <typename T>
void scatter_rows_add(T* dx, const T* src, const int32_t* slot_assign, int64_t N, int64_t kmax, int64_t A, int64_t d) {
  check_slot_assign(slot_assign, N * kmax, A, false);
#pragma omp parallel for schedule(static) if (N * d >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    const int32_t* sa = slot_assign + t * kmax;
    for (int64_t c = 0; c < d; ++c) {
      double acc = 0;
      for (int64_t j = 0; j < kmax; ++j) {
        if (sa[j] >= 0) acc += src[sa[j] * d + c];
      }
      dx[t * d + c] = static_cast<T>(dx[t * d + c] + acc);
    }
  }
}

#define AM_INSTANTIATE(T)                                                                                            \
  template void gather_rows<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t);                    \
  template void combine<T>(T*, const T*, const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t);              \
  template void combine_backward<T>(T*, T*, const T*, const T*, const T*, const int32_t*, int64_t, int64_t, int64_t, \
                                    int64_t);                                                                        \
  template void scatter_rows_add<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t);
AM_INSTANTIATE(float)
AM_INSTANTIATE(double)
#undef AM_INSTANTIATE

}  // namespace am::cpu
