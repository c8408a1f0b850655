// The memory checker's view of the running kernel thread (scheduler.cpp fills it; memcheck.cpp
// reads it on every load and store of kernel code).
#pragma once

#include "sim_internal.h"

#include <cstdint>
#include <vector>

namespace am::sim {

struct SharedObject {
  void* ptr = nullptr;
  size_t bytes = 0;
  const char* what = "";
  const void* site = nullptr;  // AM_SHARED's declaration site
  bool owned = true;
};

struct KernelContext {
  uint3 thread{}, block{};
  int linear_thread = 0;
  uint32_t block_tag = 0;  // the block's linear index + 1 (Shadow::block)
  const LaunchRequest* req = nullptr;
  std::vector<SharedObject>* shared = nullptr;
  uintptr_t stack_lo = 0;
  size_t stack_size = 0;
  const Allocation* cache = nullptr;  // the allocation of the last global access
};

void memcheck_enter(KernelContext* ctx);  // the thread that runs now (nullptr: none)
void memcheck_launch_start(const LaunchRequest* req);
void memcheck_launch_end();
void memcheck_barrier();
void memcheck_warp_synced(KernelContext& ctx);
std::string memcheck_where(const KernelContext& ctx);

}  // namespace am::sim
