// The memory checker's view of the running kernel thread (scheduler.cpp fills it; memcheck.cpp
// reads it on every load and store of kernel code).
#pragma once

#include "sim_internal.h"

#include <cstdint>
#include <vector>

namespace am::sim {

// Per 4-byte word of shared memory: who last wrote it, and when (for the uninitialised-read and
// race checks of memcheck.cpp).
struct SharedWord {
  uint32_t thread = 0;      // the writer's linear thread index + 1 (0: never written; kAtomicBlock: atomics)
  uint32_t epoch = 0;       // the block's barrier count at the write
  uint32_t warp_epoch = 0;  // the writer's __syncwarp count at the write
  uint32_t reader = 0, reader_epoch = 0, reader_warp_epoch = 0;  // the same of the last read
};

struct SharedObject {
  void* ptr = nullptr;
  size_t bytes = 0;
  const char* what = "";
  const void* site = nullptr;  // AM_SHARED's declaration site
  bool owned = true;
  std::vector<SharedWord> shadow = std::vector<SharedWord>((bytes + 3) / 4);
};

struct KernelContext {
  uint3 thread{}, block{};
  int linear_thread = 0;
  uint32_t block_tag = 0;  // the block's linear index + 1 (Shadow::block)
  const LaunchRequest* req = nullptr;
  std::vector<SharedObject>* shared = nullptr;
  uintptr_t stack_lo = 0;
  size_t stack_size = 0;
  const Allocation* cache = nullptr;      // the allocation of the last global access
  const uint32_t* block_epoch = nullptr;  // barriers the block has passed
  uint32_t* warp_epochs = nullptr;        // __syncwarp calls each thread of the block has passed
};

void memcheck_enter(KernelContext* ctx);  // the thread that runs now (nullptr: none)
void memcheck_launch_start(const LaunchRequest* req);
void memcheck_launch_end();
std::string memcheck_where(const KernelContext& ctx);

}  // namespace am::sim
