#include "cpu/ops_embedding.h"

#include "core/error.h"
#include "cpu/parallel.h"

#include <omp.h>

#include <algorithm>

namespace am::cpu {

namespace {

void check_tokens(const int32_t* tokens, int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; ++i) {
    AM_CHECK(tokens[i] >= 0 && tokens[i] < V, "token {} at position {} is outside [0, {})", tokens[i], i, V);
  }
}

}  // namespace

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* table, int64_t N, int64_t V, int64_t d) {
  check_tokens(tokens, N, V);
#pragma omp parallel for schedule(static) if (N * d >= kParallelGrain)
  for (int64_t i = 0; i < N; ++i) {
    const T* src = table + tokens[i] * d;
    std::copy(src, src + d, out + i * d);
  }
}

template <typename T>
void embedding_backward(T* dtable, const int32_t* tokens, const T* dout, int64_t N, int64_t V, int64_t d) {
  check_tokens(tokens, N, V);
#pragma omp parallel if (N * d >= kParallelGrain)
  {
    // This thread owns table rows [v0, v1); it visits the tokens in order 0..N-1.
    const int parts = omp_get_num_threads();
    const int me = omp_get_thread_num();
    const int64_t v0 = part_begin(V, me, parts), v1 = part_begin(V, me + 1, parts);
    for (int64_t i = 0; i < N; ++i) {
      const int64_t v = tokens[i];
      if (v < v0 || v >= v1) continue;
      T* dst = dtable + v * d;
      const T* src = dout + i * d;
      for (int64_t c = 0; c < d; ++c) dst[c] += src[c];
    }
  }
}

#define AM_INSTANTIATE(T)                                                                      \
  template void embedding_forward<T>(T*, const int32_t*, const T*, int64_t, int64_t, int64_t); \
  template void embedding_backward<T>(T*, const int32_t*, const T*, int64_t, int64_t, int64_t);
AM_INSTANTIATE(float)
AM_INSTANTIATE(double)
#undef AM_INSTANTIATE

}  // namespace am::cpu
