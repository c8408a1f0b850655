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
  // Host synchronisations: every point where the host waits for the device. sync_memcpy: synchronous
  // cudaMemcpy to or from the host; sync_malloc, sync_free: cudaMalloc, cudaFree; then stream, event
  // and device synchronisations.
  uint64_t sync_memcpy = 0, sync_malloc = 0, sync_free = 0, sync_stream = 0, sync_event = 0, sync_device = 0;
  uint64_t bytes_h2d = 0, bytes_d2h = 0;
  // Operations (kernels, copies, memsets, library calls) queued on the legacy default stream: the
  // CUDA backend queues everything on its compute stream (cuda/stream.cuh), so 0 for its work.
  uint64_t legacy_stream_ops = 0;
  size_t peak_device_bytes = 0;  // cudaMalloc'd bytes, highest since the reset
  uint64_t host_syncs() const { return sync_memcpy + sync_malloc + sync_free + sync_stream + sync_event + sync_device; }
};

std::optional<DeviceCounts> device_counts();  // since reset_device_counts()
void reset_device_counts();

}  // namespace am
