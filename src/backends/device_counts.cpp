// device_counts(): the CUDA simulator's counters (cuda/sim/), read here above core/ (see
// core/device_counts.h).
#include "core/device_counts.h"

#ifdef AM_CUDA_SIM
#include "am_sim/sim.h"
#endif

namespace am {

#ifdef AM_CUDA_SIM
std::optional<DeviceCounts> device_counts() { return sim::counters(); }
void reset_device_counts() { sim::reset_counters(); }
#else
std::optional<DeviceCounts> device_counts() { return std::nullopt; }
void reset_device_counts() {}
#endif

}  // namespace am
