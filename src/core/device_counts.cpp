#include "core/device_counts.h"

#ifdef AM_CUDA_SIM
#include "am_sim/sim.h"
#endif

namespace am {

#ifdef AM_CUDA_SIM
std::optional<DeviceCounts> device_counts() {
  const sim::Counters& c = sim::counters();
  DeviceCounts d;
  d.launches = c.launches;
  d.kernel_launches = c.kernel_launches;
  d.memcpy_h2d = c.memcpy_h2d;
  d.memcpy_d2h = c.memcpy_d2h;
  d.memcpy_d2d = c.memcpy_d2d;
  d.memsets = c.memsets;
  d.host_syncs = c.host_syncs();
  d.sync_memcpy = c.sync_memcpy;
  d.sync_malloc = c.sync_malloc;
  d.sync_free = c.sync_free;
  d.sync_stream = c.sync_stream;
  d.sync_event = c.sync_event;
  d.sync_device = c.sync_device;
  d.peak_device_bytes = c.peak_device_bytes;
  return d;
}
void reset_device_counts() { sim::reset_counters(); }
#else
std::optional<DeviceCounts> device_counts() { return std::nullopt; }
void reset_device_counts() {}
#endif

}  // namespace am
