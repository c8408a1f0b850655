// Private helpers of select.cu and routing.cu: launch geometry, the preference order of
// src/cpu/select_order.h on the device (as a comparison and as a radix-sortable key), warp
// reductions in a fixed order, and a stable device sort of (key, int32 value) pairs on CUB.
#pragma once

#include "check.cuh"
#include "core/backend.h"
#include "launch.cuh"

#include <cub/cub.cuh>

#include <algorithm>
#include <climits>
#include <cstdint>

namespace am::cuda::moe {

using am::cuda::kThreads;  // every kernel of these families runs launch.cuh's 256-thread blocks
constexpr unsigned kFullMask = 0xffffffffu;

// Blocks (launch.cuh's blocks_for) for a grid-stride loop with one warp per item.
inline unsigned blocks_for_warps(int64_t warps) { return blocks_for(warps * 32); }

__device__ __forceinline__ int64_t thread_id() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t thread_stride() { return int64_t(gridDim.x) * blockDim.x; }
// Warp-per-item loops: the item index and stride are uniform across a warp, so every lane takes
// the same iterations and full-mask shuffles are legal.
__device__ __forceinline__ int64_t warp_id() { return thread_id() >> 5; }
__device__ __forceinline__ int64_t warp_stride() { return thread_stride() >> 5; }
__device__ __forceinline__ int lane_id() { return static_cast<int>(threadIdx.x & 31); }

// select_order.h's preferred(): true when (va, a) goes before (vb, b): a higher value first,
// equal values (and two NaNs) to the lower index, NaN after every number.
__device__ __forceinline__ bool preferred(float va, int64_t a, float vb, int64_t b) {
  const bool na = isnan(va), nb = isnan(vb);
  if (na != nb) return nb;
  if (!na && va != vb) return va > vb;
  return a < b;
}

// A key whose ascending order is the preference order on values: higher first, -0 equal to +0,
// NaN after every number. Equal values give equal keys, so a STABLE sort of items listed in
// increasing index order puts ties at the lower index first: exactly preferred().
__device__ __forceinline__ uint32_t desc_key(float v) {
  if (isnan(v)) return 0xffffffffu;                          // no number maps there (~asc == ~0 needs bits ~0, a NaN)
  const uint32_t b = (v == 0.0f) ? 0u : __float_as_uint(v);  // -0 -> +0
  const uint32_t asc = (b & 0x80000000u) ? ~b : (b | 0x80000000u);  // ascending in v
  return ~asc;
}

// Sum of a double over the warp, in a fixed butterfly order (the same bits on every run).
__device__ __forceinline__ double warp_sum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFullMask, v, off);
  return v;
}

// The number of bits that hold every value in [0, max_value] (at least 1).
inline int bits_for(uint64_t max_value) {
  int b = 1;
  while (b < 64 && (max_value >> b) != 0) ++b;
  return b;
}

// A scratch device array of n T's (RAII through the backend's Buffer).
template <typename T>
struct Scratch {
  Buffer buf;
  T* ptr = nullptr;
  Scratch(Backend& be, int64_t n) : buf(be.alloc(sizeof(T) * static_cast<size_t>(std::max<int64_t>(n, 1)))) {
    ptr = static_cast<T*>(buf.get());
  }
};

// Stable ascending sort of n (key, value) pairs by bits [0, end_bit) of the keys (CUB radix
// sort: deterministic, and equal keys keep their input order). Outputs must not alias inputs.
template <typename K>
void sort_pairs(Backend& be, const K* keys_in, K* keys_out, const int32_t* vals_in, int32_t* vals_out, int64_t n,
                int end_bit) {
  if (n == 0) return;
  AM_CHECK(n <= INT_MAX, "sort of {} items: more than int32 indices hold", n);
  const int items = static_cast<int>(n);
  end_bit = std::clamp(end_bit, 1, static_cast<int>(sizeof(K) * 8));
  size_t bytes = 0;
  AM_CUDA(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys_in, keys_out, vals_in, vals_out, items, 0, end_bit,
                                          compute_stream()));
  Buffer tmp = be.alloc(bytes);
  AM_CUDA(cub::DeviceRadixSort::SortPairs(tmp.get(), bytes, keys_in, keys_out, vals_in, vals_out, items, 0, end_bit,
                                          compute_stream()));
  AM_CUDA_LAUNCHED();
}

}  // namespace am::cuda::moe
