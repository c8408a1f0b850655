// Internals shared by the simulator's pieces (not for cuda/*.cu, which see only the CUDA API and
// am_sim/launch.h):
//  - memory.cpp: the device arena (one reserved range; pages protected while no operation runs),
//    the allocation table, and the shadow memory (per 4-byte word: the operation and block that
//    last wrote it; 0 = never written);
//  - streams.cpp: streams, events, operations with their vector clocks, host synchronisations,
//    counters, errors; device_api.cpp: the rest of the CUDA runtime API (device, memory, launches);
//  - scheduler.cpp: a grid's blocks and threads (fibers), barriers and warp collectives;
//  - mma.cpp: the tensor cores' mma.sync.m16n8k16 (bf16), a warp collective of scheduler.cpp;
//  - memcheck.cpp: every load and store of kernel code (GCC's -fsanitize=thread instrumentation,
//    with the simulator's own callbacks) checked against the above;
//  - cublas.cpp, cub.cpp, nccl.cpp: the libraries.
#pragma once

#include "am_sim/launch.h"
#include "am_sim/sim.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace am::sim {

// Prints "[cuda-sim] error: msg" and throws SimError.
[[noreturn]] void fail(const std::string& msg);

// ---- memory.cpp ----
struct Allocation {
  uintptr_t base = 0;
  size_t raw = 0;      // bytes reserved for it (cudaMalloc's size)
  size_t logical = 0;  // bytes the owner may touch (the caching allocator's request when cached)
  bool live = false;   // false: freed, or parked in the caching allocator
  bool freed = false;  // cudaFree'd
  uint64_t id = 0;     // 1, 2, ... in allocation order
};
struct Shadow {
  uint32_t op = 0;     // the operation that last wrote the word (0: never written)
  uint32_t block = 0;  // its block + 1 (a kernel), kAtomicBlock (an atomic), 0 (not a kernel)
};
inline constexpr uint32_t kAtomicBlock = 0xffffffffu;

void* arena_alloc(size_t bytes);  // nullptr when the simulated device memory is exhausted
void arena_free(void* p);
bool in_arena(const void* p);
Allocation* find_allocation(const void* p);  // the allocation whose reserved range holds p
Shadow* shadow_of(const void* p);            // p in the arena
void shadow_clear(const void* p, size_t bytes);
void shadow_set(const void* p, size_t bytes, uint32_t op);
void shadow_copy(void* dst, const void* src, size_t bytes);
std::string describe_address(const void* p);  // "offset 40 of allocation #3 (128 bytes)"
size_t device_bytes_in_use();
size_t device_bytes_limit();
// The runtime's own accesses to device memory (copies, library calls, kernels): the arena's pages
// are readable and writable only inside one of these.
struct ArenaOpen {
  ArenaOpen();
  ~ArenaOpen();
  ArenaOpen(const ArenaOpen&) = delete;
  ArenaOpen& operator=(const ArenaOpen&) = delete;
};
bool arena_is_open();

// ---- streams.cpp ----
struct OpInfo {
  int stream = 0;
  uint64_t clock = 0;
  const char* name = "";
};
// The operation running now: its id, stream and what it knows of the other streams' progress.
struct CurrentOp {
  uint32_t id = 0;
  int stream = 0;
  const char* name = nullptr;
  std::vector<uint64_t> known;  // known[s]: stream s's operations up to this clock have finished
};
const CurrentOp* current_op();
const OpInfo& op_info(uint32_t id);
// Queues fn as one operation on `stream` and runs it (in stream order; see streams.cpp). Counted
// as a launch (kernels, library calls) unless it is a copy, a memset or the simulator's own
// bookkeeping. at_once: run it now even with lazy streams, after what it is ordered after (the
// collectives, which every rank must run in program order).
void enqueue(cudaStream_t stream, const char* name, std::function<void()> fn, bool counted = true,
             bool at_once = false);
void set_last_error(cudaError_t e);
cudaError_t last_error(bool clear);  // cudaGetLastError (clear) / cudaPeekAtLastError
Counters& mutable_counters();
void drain_all();  // runs every queued operation (lazy streams)
void host_sync_legacy();
void host_sync_stream(cudaStream_t stream);  // the host waits for one stream (legacy: host_sync_legacy)  // the host
                                             // waits for the legacy default stream and the blocking streams
// Checks a range the runtime is about to read or write for the current operation: live, in
// bounds, written before (reads with require_init), ordered after its last writer's stream.
void runtime_access(const void* p, size_t bytes, bool write, bool require_init, const char* what);

// ---- scheduler.cpp ----
void run_grid(const LaunchRequest& req, const Schedule& schedule);
struct KernelContext;  // memcheck.cpp's view of the running thread
const KernelContext* kernel_context();

// ---- mma.cpp ----
// One mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 of a warp: lanes[j] holds lane j's
// fragment registers; writes every lane's D.
void mma_bf16_m16n8k16_warp(const MmaLane* const (&lanes)[32]);

}  // namespace am::sim
