// What the simulator offers beyond the CUDA API: its errors, its schedules, its counters, and
// the hooks the caching allocator calls. Only the simulator build (AM_CUDA_SIM) has this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace am::sim {

// Every fault the simulator detects (a bad access, a barrier or collective not reached by all,
// a race, a stream hazard, a misused API) throws this, after printing it to stderr.
struct SimError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The order in which a block's threads run between barriers, and the blocks of a grid.
struct Schedule {
  enum Order { Ascending, Descending, WarpReversed, Random } order = Ascending;
  uint64_t seed = 1;  // Random
  std::string name() const;
};
// "asc", "desc", "warprev", "random" or "random:SEED"; throws SimError naming the valid values.
Schedule parse_schedule(const std::string& text);

// Settings, from the environment at start-up (docs/simulator.md) and changeable by tests:
//   AM_SIM_SCHEDULE   the schedule every launch runs under (default asc)
//   AM_SIM_RACECHECK  a second schedule: each launch also runs under it, from the same inputs, and
//                     must give the same bits (default off)
//   AM_SIM_STREAMS    eager (run each operation when queued) or lazy (run as late as the host's
//                     synchronisations and the events allow: the adversarial order)
//   AM_SIM_SHARED_CHECKS  0 turns off the shared-memory checks: reads of words never written in
//                     the block, races between barriers (on by default)
struct Settings {
  Schedule schedule;
  bool racecheck = false;
  Schedule racecheck_schedule;
  bool lazy_streams = false;
  bool shared_checks = true;
};
Settings& settings();

// Counts since the last reset_counters() (or the start).
struct Counters {
  uint64_t launches = 0;          // kernels and library operations (GEMMs, sorts, collectives)
  uint64_t kernel_launches = 0;   // kernels alone
  uint64_t memcpy_h2d = 0, memcpy_d2h = 0, memcpy_d2d = 0, memsets = 0;
  uint64_t bytes_h2d = 0, bytes_d2h = 0;
  // Host synchronisations: every point where the host waits for the device.
  uint64_t sync_memcpy = 0;   // synchronous cudaMemcpy to or from the host
  uint64_t sync_malloc = 0;   // cudaMalloc
  uint64_t sync_free = 0;     // cudaFree
  uint64_t sync_stream = 0;   // cudaStreamSynchronize
  uint64_t sync_event = 0;    // cudaEventSynchronize
  uint64_t sync_device = 0;   // cudaDeviceSynchronize
  size_t peak_device_bytes = 0;   // cudaMalloc'd bytes, highest since the reset
  uint64_t host_syncs() const {
    return sync_memcpy + sync_malloc + sync_free + sync_stream + sync_event + sync_device;
  }
};
const Counters& counters();
void reset_counters();

// Installs (again) the handler that reports host code touching device memory (SIGSEGV in the
// arena), for a program that installed its own SIGSEGV handler after the simulator started.
void install_fault_handler();

// The caching allocator's blocks: handed out for `bytes` (bounds checks and the uninitialised-
// memory check use that size; the bytes are poisoned again), or parked in the cache (no kernel
// or copy may touch it until it is handed out again).
void note_handout(void* p, size_t bytes);
void note_cached(void* p);

}  // namespace am::sim
