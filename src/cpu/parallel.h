// OpenMP conventions shared by the CPU kernels.
//
// Determinism whatever the thread count: a parallel loop runs over OUTPUT elements (rows, heads,
// columns), and each output element is computed by one thread in a fixed order. Reductions across
// rows are either split by column (each column summed serially in row order) or cut into chunks of
// a fixed size whose partial results are combined in chunk order. No `omp ... reduction` on
// floating point anywhere.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace am::cpu {

// Loops with less work than this (in elements touched) stay on the calling thread: spawning a
// parallel region costs a few microseconds. Results never depend on this choice.
inline constexpr int64_t kParallelGrain = 1 << 15;

// Fixed chunk length of the chunked reductions (sum_squares): independent of the thread count.
inline constexpr int64_t kReduceChunk = 1 << 14;

// sum over i in [0, n) of term(i), in double: fixed chunks of kReduceChunk, each summed in order by
// one thread, combined in chunk order. The bits do not depend on the thread count.
template <typename Term>
double chunked_sum(int64_t n, Term term) {
  const int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(n, (c + 1) * kReduceChunk);
    double s = 0;
    for (int64_t i = c * kReduceChunk; i < end; ++i) s += term(i);
    partial[static_cast<size_t>(c)] = s;
  }
  double total = 0;
  for (double x : partial) total += x;
  return total;
}

// [begin, end) of part `i` of `parts` near-equal parts of [0, n).
inline int64_t part_begin(int64_t n, int i, int parts) { return n * i / parts; }

}  // namespace am::cpu
