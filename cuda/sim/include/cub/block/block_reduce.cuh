// The simulator's cub::BlockReduce: the same contract as CUB's (every thread of the block calls
// it, one barrier inside, the result valid in thread 0 only, the temporary storage reusable only
// after a further barrier). Threads other than 0 get NaN (floating point) or their own input, so
// a caller that reads the result outside thread 0 fails its tests here as it would on a GPU.
// The combination order (pairwise within each warp, then the warps in order) is fixed.
#pragma once

#include <cuda_runtime.h>

#include <limits>
#include <type_traits>

namespace cub {

template <typename T, int kBlockThreads>
class BlockReduce {
 public:
  struct TempStorage {
    T slot[kBlockThreads];
  };
  explicit BlockReduce(TempStorage& tmp) : tmp_(tmp) {}

  template <typename Op>
  T Reduce(T v, Op op) {
    const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    tmp_.slot[tid] = v;
    __syncthreads();
    if (tid != 0) {
      if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<T>::quiet_NaN();
      return v;
    }
    T total{};
    for (int w = 0; w * 32 < kBlockThreads; ++w) {
      const int lanes = kBlockThreads - w * 32 < 32 ? kBlockThreads - w * 32 : 32;
      T lane[32];
      for (int i = 0; i < lanes; ++i) lane[i] = tmp_.slot[w * 32 + i];
      for (int off = 1; off < lanes; off *= 2) {
        for (int i = 0; i + off < lanes; i += 2 * off) lane[i] = op(lane[i], lane[i + off]);
      }
      total = w == 0 ? lane[0] : op(total, lane[0]);
    }
    return total;
  }
  T Sum(T v) {
    return Reduce(v, [](T a, T b) { return a + b; });
  }

 private:
  TempStorage& tmp_;
};

}  // namespace cub
