// Deterministic reductions shared by the row kernels (dense.cu, rows.cu):
//  - block_allreduce: a whole block reduces one value per thread (CUB BlockReduce, fixed block
//    size, so a fixed combination order) and every thread gets the result;
//  - with_row_block: picks the block size of a one-block-per-row kernel from the row length;
//  - column_reduce: per-column sums over the rows of an (N, n) matrix, in double, as fixed chunks
//    of kColumnChunk rows (each summed in row order by one thread) combined in chunk order.
// Nothing here uses floating-point atomics: the same inputs give the same bits.
#pragma once

#include "check.cuh"
#include "core/backend.h"
#include "launch.cuh"

#include <cub/block/block_reduce.cuh>

#include <algorithm>
#include <cstdint>
#include <type_traits>

// A grid-stride loop of a 1-D launch: for (int64_t i = ...; i < n; ...) over [0, n).
#define AM_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

namespace am::cuda {

struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};
// std::max's choice: b when a < b, else a (the maximum is exact, whatever the order).
struct MaxOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a < b ? b : a;
  }
};

// Every thread of a kBlock-thread block passes v; every thread returns op over all of them.
// Ends with a barrier, so it can be called again right away (its shared memory is reused).
template <int kBlock, typename T, typename Op>
__device__ __forceinline__ T block_allreduce(T v, Op op) {
  using Reduce = cub::BlockReduce<T, kBlock>;
  AM_SHARED(typename Reduce::TempStorage, tmp, );
  AM_SHARED(T, result, );
  const T r = Reduce(tmp).Reduce(v, op);  // valid in thread 0
  if (threadIdx.x == 0) result = r;
  __syncthreads();
  const T all = result;
  __syncthreads();
  return all;
}

// Calls f(std::integral_constant<int, B>{}) with the block size B of a kernel that gives one block
// to each row of length n: one warp for short rows, 128 threads up to 1024, else 512.
template <typename F>
void with_row_block(int64_t n, F&& f) {
  if (n <= 64) {
    f(std::integral_constant<int, 32>{});
  } else if (n <= 1024) {
    f(std::integral_constant<int, 128>{});
  } else {
    f(std::integral_constant<int, 512>{});
  }
}

// Rows per chunk of column_reduce: fixed, so the bits never depend on the device.
inline constexpr int64_t kColumnChunk = 128;
inline constexpr int kColumnThreads = 256;

namespace detail {

// partial (chunks, n) write: partial[c][j] = sum over rows t of chunk c, in order, of term(t, j).
// grid (ceil(n / kColumnThreads), min(chunks, kMaxBlocks)); thread x of block x owns one column.
template <typename Term>
__global__ void column_chunks_kernel(double* partial, int64_t N, int64_t n, int64_t chunks, Term term) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  for (int64_t c = blockIdx.y; c < chunks; c += gridDim.y) {
    const int64_t t1 = std::min(N, (c + 1) * kColumnChunk);
    double acc = 0;
    for (int64_t t = c * kColumnChunk; t < t1; ++t) acc += term(t, j);
    partial[c * n + j] = acc;
  }
}

// out(j, sum over chunks c in order of partial[c][j]) for every column j.
template <typename Out>
__global__ void column_total_kernel(const double* partial, int64_t n, int64_t chunks, Out out) {
  AM_GRID_STRIDE(j, n) {
    double acc = 0;
    for (int64_t c = 0; c < chunks; ++c) acc += partial[c * n + j];
    out(j, acc);
  }
}

}  // namespace detail

// For every column j of an (N, n) matrix: out(j, sum over t of term(t, j)) with term a __device__
// functor (int64_t t, int64_t j) -> double and out a __device__ functor (int64_t j, double sum).
// N == 0 gives out(j, 0) for every column.
template <typename Term, typename Out>
void column_reduce(Backend& be, int64_t N, int64_t n, Term term, Out out) {
  if (n == 0) return;
  const int64_t chunks = (N + kColumnChunk - 1) / kColumnChunk;
  Buffer partial = be.alloc(sizeof(double) * static_cast<size_t>(std::max<int64_t>(chunks * n, 1)));
  double* part = static_cast<double*>(partial.get());
  const unsigned col_blocks = static_cast<unsigned>((n + kColumnThreads - 1) / kColumnThreads);
  if (chunks > 0) {
    const dim3 grid(col_blocks, static_cast<unsigned>(std::min<int64_t>(chunks, kMaxBlocks)));
    launch<detail::column_chunks_kernel<Term>>(grid, kColumnThreads, 0, compute_stream(), part, N, n, chunks, term);
  }
  const unsigned total_blocks = static_cast<unsigned>(std::min<int64_t>(col_blocks, kMaxBlocks));
  launch<detail::column_total_kernel<Out>>(total_blocks, kColumnThreads, 0, compute_stream(), part, n, chunks, out);
}

// The common term and out of column_reduce: x[t][j] of an fp32 (N, n) matrix, widened; the sums
// into a double array.
struct F32Column {
  const float* x;
  int64_t n;
  __device__ double operator()(int64_t t, int64_t j) const { return double(x[t * n + j]); }
};
struct StoreF64 {
  double* dst;
  __device__ void operator()(int64_t j, double s) const { dst[j] = s; }
};

}  // namespace am::cuda
