// How a kernel is launched and how it declares shared memory: one idiom that both builds of
// cuda/*.cu understand, nvcc for the GPU and g++ for the simulator (cuda/sim/, docs/simulator.md).
//
//   launch<kernel>(grid, block, smem_bytes, stream, args...);   // not kernel<<<...>>>(args...)
//   AM_SHARED(float, tile, [64][65]);                          // not __shared__ float tile[64][65];
//   AM_SHARED(typename Reduce::TempStorage, tmp, );            // a scalar: empty dimensions
//   AM_DYNAMIC_SHARED(float4, smem);                           // not extern __shared__ float4 smem[];
//
// launch() also checks the launch (cudaGetLastError), so no call site can forget to. In the
// simulator build `__shared__`, `<<<...>>>` and `extern __shared__` do not compile.
//
// Also here: the one launch geometry of the 1-D kernels (all but the tiled GEMM and attention
// kernels, whose tiles fix theirs): 256-thread blocks, at least one block and at most kMaxBlocks
// along a grid dimension (the kernels' grid-stride loops cover the rest, so the grid size never
// changes a result).
#pragma once

#include "check.cuh"
#include "stream.cuh"

#include <algorithm>
#include <cstdint>
#include <utility>

#ifdef AM_CUDA_SIM
#include "am_sim/launch.h"
#define AM_SHARED(T, name, dims)         \
  static char am_shared_site_##name = 0; \
  auto& name = ::am::sim::block_shared<T dims>(&am_shared_site_##name)
#define AM_DYNAMIC_SHARED(T, name) T* name = ::am::sim::dynamic_shared<T>()
#else
#define AM_SHARED(T, name, dims) __shared__ T name dims
#define AM_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

namespace am::cuda {

// kernel<<<grid, block, smem, stream>>>(args...), then the launch error check.
template <auto Kernel, typename... Args>
void launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
#ifdef AM_CUDA_SIM
  ::am::sim::launch<Kernel>(grid, block, smem, stream, std::forward<Args>(args)...);
#else
  // clang-format 14 would split the launch's ">>>" into "> > >", which nvcc refuses:
  // clang-format off
  Kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
  // clang-format on
#endif
  AM_CUDA_LAUNCHED();
}

inline constexpr int kThreads = 256;
inline constexpr int64_t kMaxBlocks = 65535;  // also the hardware limit of gridDim.y and .z
// Blocks for a grid-stride loop over n threads.
inline unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, kMaxBlocks));
}
// Blocks for a grid-stride loop over `rows` rows, one block per row.
inline unsigned row_grid(int64_t rows) { return static_cast<unsigned>(std::clamp<int64_t>(rows, 1, kMaxBlocks)); }

}  // namespace am::cuda
