// OpenMP conventions shared by the CPU kernels.
//
// Determinism whatever the thread count: a parallel loop runs over OUTPUT elements (rows, heads,
// columns), and each output element is computed by one thread in a fixed order. Reductions across
// rows are either split by column (each column summed serially in row order) or cut into chunks of
// a fixed size whose partial results are combined in chunk order. No `omp ... reduction` on
// floating point anywhere.
#pragma once

#include <cstdint>

namespace am::cpu {

// Loops with less work than this (in elements touched) stay on the calling thread: spawning a
// parallel region costs a few microseconds. Results never depend on this choice.
inline constexpr int64_t kParallelGrain = 1 << 15;

// Fixed chunk length of the chunked reductions (sum_squares): independent of the thread count.
inline constexpr int64_t kReduceChunk = 1 << 14;

// [begin, end) of part `i` of `parts` near-equal parts of [0, n).
inline int64_t part_begin(int64_t n, int i, int parts) { return n * i / parts; }

}  // namespace am::cpu
