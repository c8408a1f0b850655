// Range check of a device array of ids (tokens, targets) before a kernel indexes memory with them:
// one pass over the ids, the first bad position found with an integer atomicMin (its result does
// not depend on the order of the atomics), then one small copy back to the host. The host throws,
// so a bad id is reported like the CPU backend reports it and no kernel reads out of bounds.
#pragma once

#include "check.cuh"
#include "core/backend.h"
#include "launch.cuh"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace am::cuda {
// Internal linkage: each .cu file that includes this header gets its own copy of the kernel.
namespace {

__global__ void first_id_outside_kernel(const int32_t* ids, int64_t n, int64_t lo, int64_t hi,
                                        unsigned long long* first) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t v = ids[i];
    if (v < lo || v >= hi) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

struct BadId {
  int64_t index = -1;  // -1: every id is in range
  int32_t value = 0;
};

// The first i with ids[i] (device, n) outside [lo, hi). Synchronizes with the host.
BadId first_id_outside(Backend& be, const int32_t* ids, int64_t n, int64_t lo, int64_t hi) {
  BadId bad;
  if (n == 0) return bad;
  Buffer flag = be.alloc(sizeof(unsigned long long));
  unsigned long long first = std::numeric_limits<unsigned long long>::max();
  AM_CUDA(cudaMemcpy(flag.get(), &first, sizeof(first), cudaMemcpyHostToDevice));
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 4096));
  launch<first_id_outside_kernel>(blocks, threads, 0, 0, ids, n, lo, hi, static_cast<unsigned long long*>(flag.get()));
  AM_CUDA(cudaMemcpy(&first, flag.get(), sizeof(first), cudaMemcpyDeviceToHost));
  if (first == std::numeric_limits<unsigned long long>::max()) return bad;
  bad.index = static_cast<int64_t>(first);
  AM_CUDA(cudaMemcpy(&bad.value, ids + bad.index, sizeof(int32_t), cudaMemcpyDeviceToHost));
  return bad;
}

}  // namespace
}  // namespace am::cuda
