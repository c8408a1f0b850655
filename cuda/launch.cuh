// Launch geometry of the element-wise and row kernels (elementwise.cu, dense.cu, rows.cu):
// 256-thread blocks, grids capped at 65535 blocks (their grid-stride loops cover the rest).
#pragma once

#include <algorithm>
#include <cstdint>

namespace am::cuda {

inline constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535));
}

}  // namespace am::cuda
