#include "cpu/ops_norms.h"

#include "core/error.h"
#include "cpu/parallel.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace am::cpu {

namespace {

template <typename T>
double block_norm(const T* c, int64_t dl, NormKind kind) {
  double acc = 0;
  for (int64_t i = 0; i < dl; ++i) {
    const double v = c[i];
    switch (kind) {
      case NormKind::L2:
        acc += v * v;
        break;
      case NormKind::L1:
        acc += std::fabs(v);
        break;
      case NormKind::Linf:
        acc = std::max(acc, std::fabs(v));
        break;
    }
  }
  return kind == NormKind::L2 ? std::sqrt(acc) : acc;
}

template <typename T>
T sign(T v) {
  return v > T(0) ? T(1) : (v < T(0) ? T(-1) : T(0));
}

// Every a names a slot of [0, N*kmax) whose id is in [0, n).
void check_blocks(const int32_t* assign_slot, const int32_t* slot_expert, int64_t A, int64_t N, int64_t kmax,
                  int64_t n) {
  for (int64_t a = 0; a < A; ++a) {
    const int64_t slot = assign_slot[a];
    AM_CHECK(slot >= 0 && slot < N * kmax, "assignment {} names slot {}, outside [0, {})", a, slot, N * kmax);
    AM_CHECK(slot_expert[slot] >= 0 && slot_expert[slot] < n,
             "assignment {} names slot {} holding expert {}, outside [0, {})", a, slot, slot_expert[slot], n);
  }
}

}  // namespace

template <typename T>
void block_norms(T* s, int64_t S, const T* c, int64_t N, int64_t nb, int64_t dl, NormKind kind) {
#pragma omp parallel for schedule(static) if (N * nb * dl >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      s[t * S + b] = static_cast<T>(block_norm(c + (t * nb + b) * dl, dl, kind));
    }
  }
}

template <typename T>
void block_norms_backward(T* dc, const T* ds, const T* c, const T* s, int64_t S, int64_t N, int64_t nb, int64_t dl,
                          NormKind kind) {
#pragma omp parallel for schedule(static) if (N * nb * dl >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      const T* cb = c + (t * nb + b) * dl;
      T* db = dc + (t * nb + b) * dl;
      const T g = ds[t * S + b];
      switch (kind) {
        case NormKind::L2: {
          const T norm = s[t * S + b];
          if (norm == T(0)) break;
          const T k = g / norm;
          for (int64_t i = 0; i < dl; ++i) db[i] += k * cb[i];
          break;
        }
        case NormKind::L1:
          for (int64_t i = 0; i < dl; ++i) db[i] += g * sign(cb[i]);
          break;
        case NormKind::Linf: {
          int64_t at = 0;  // the first index of the largest |c|
          for (int64_t i = 1; i < dl; ++i) {
            if (std::fabs(cb[i]) > std::fabs(cb[at])) at = i;
          }
          if (dl > 0) db[at] += g * sign(cb[at]);
          break;
        }
      }
    }
  }
}

template <typename T>
void gather_blocks(T* out, const T* c, const int32_t* assign_slot, const int32_t* slot_expert, int64_t A, int64_t N,
                   int64_t kmax, int64_t n, int64_t dl) {
  check_blocks(assign_slot, slot_expert, A, N, kmax, n);
#pragma omp parallel for schedule(static) if (A * dl >= kParallelGrain)
  for (int64_t a = 0; a < A; ++a) {
    const int64_t slot = assign_slot[a], t = slot / kmax, e = slot_expert[slot];
    std::copy_n(c + (t * n + e) * dl, dl, out + a * dl);
  }
}

template <typename T>
void scatter_blocks_add(T* dc, const T* src, const int32_t* assign_slot, const int32_t* slot_expert, int64_t A,
                        int64_t N, int64_t kmax, int64_t n, int64_t dl) {
  check_blocks(assign_slot, slot_expert, A, N, kmax, n);
  // The a's of each row, in increasing order (a counting sort by row): each row is then summed by
  // one thread in a fixed order, even when two assignments share a block.
  std::vector<int64_t> off(static_cast<size_t>(N + 1), 0), by_row(static_cast<size_t>(A));
  for (int64_t a = 0; a < A; ++a) ++off[assign_slot[a] / kmax + 1];
  for (int64_t t = 0; t < N; ++t) off[t + 1] += off[t];
  std::vector<int64_t> next(off.begin(), off.end() - 1);
  for (int64_t a = 0; a < A; ++a) by_row[next[assign_slot[a] / kmax]++] = a;
#pragma omp parallel for schedule(static) if (A * dl >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) {
    for (int64_t i = off[t]; i < off[t + 1]; ++i) {
      const int64_t a = by_row[i], e = slot_expert[assign_slot[a]];
      T* d = dc + (t * n + e) * dl;
      const T* x = src + a * dl;
      for (int64_t j = 0; j < dl; ++j) d[j] += x[j];
    }
  }
}

template <typename T>
void broadcast_columns(T* x, const T* v, int64_t N, int64_t C, int64_t m, int64_t col) {
#pragma omp parallel for schedule(static) if (N * m >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) std::copy_n(v, m, x + t * C + col);
}

template <typename T>
void copy_columns(T* dst, const T* src, int64_t N, int64_t C, int64_t w, int64_t col) {
#pragma omp parallel for schedule(static) if (N * w >= kParallelGrain)
  for (int64_t t = 0; t < N; ++t) std::copy_n(src + t * w, w, dst + t * C + col);
}

#define AM_INSTANTIATE(T)                                                                                          \
  template void block_norms<T>(T*, int64_t, const T*, int64_t, int64_t, int64_t, NormKind);                        \
  template void block_norms_backward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t,      \
                                        NormKind);                                                                 \
  template void gather_blocks<T>(T*, const T*, const int32_t*, const int32_t*, int64_t, int64_t, int64_t, int64_t, \
                                 int64_t);                                                                         \
  template void scatter_blocks_add<T>(T*, const T*, const int32_t*, const int32_t*, int64_t, int64_t, int64_t,     \
                                      int64_t, int64_t);                                                           \
  template void broadcast_columns<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t);                            \
  template void copy_columns<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t);
AM_INSTANTIATE(float)
AM_INSTANTIATE(double)
#undef AM_INSTANTIATE

}  // namespace am::cpu
