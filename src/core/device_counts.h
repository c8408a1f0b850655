// What the device did, counted: kernel launches, host synchronisations (by kind) and peak device
// memory. Only the CUDA simulator counts (cuda/sim/, docs/simulator.md); elsewhere device_counts()
// is empty. autonomoe-bench reports them per training step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace am {

struct DeviceCounts {
  uint64_t launches = 0;         // kernels and library operations (GEMMs, sorts, collectives)
  uint64_t kernel_launches = 0;  // kernels alone
  uint64_t memcpy_h2d = 0, memcpy_d2h = 0, memcpy_d2d = 0, memsets = 0;
  // Host synchronisations: every point where the host waits for the device.
  uint64_t host_syncs = 0;
  uint64_t sync_memcpy = 0, sync_malloc = 0, sync_free = 0, sync_stream = 0, sync_event = 0, sync_device = 0;
  size_t peak_device_bytes = 0;  // cudaMalloc'd bytes, highest since the reset
};

std::optional<DeviceCounts> device_counts();  // since reset_device_counts()
void reset_device_counts();

}  // namespace am
