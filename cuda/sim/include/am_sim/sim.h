// What the simulator offers beyond the CUDA API: its errors, its schedules, its counters, and
// the hooks the caching allocator calls. Only the simulator build (AM_CUDA_SIM) has this header.
#pragma once

#include "core/device_counts.h"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

struct CUstream_st;  // cudaStream_t is a CUstream_st*

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

// Counts since the last reset_counters() (or the start): src/core/device_counts.h's struct, which
// autonomoe-bench reports.
using Counters = DeviceCounts;
const Counters& counters();
void reset_counters();

// Installs (again) the handler that reports host code touching device memory (SIGSEGV in the
// arena), for a program that installed its own SIGSEGV handler after the simulator started.
void install_fault_handler();

// The caching allocator's blocks: handed out for `bytes` (bounds checks and the uninitialised-
// memory check use that size; the bytes are poisoned again), or parked in the cache (no kernel
// or copy may touch it until it is handed out again).
void note_handout(void* p, size_t bytes, CUstream_st* stream);  // CUstream_st*: cudaStream_t
void note_cached(void* p, CUstream_st* stream);

}  // namespace am::sim
