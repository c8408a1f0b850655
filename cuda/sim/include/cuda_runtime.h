// The simulator's <cuda_runtime.h>: the toolkit's own host API declarations (types, enums,
// cudaMalloc & co., which cuda/sim/*.cpp implement on the CPU) plus the device side of CUDA C++
// that kernels use (am_sim/device.h). Only the subset documented in docs/simulator.md exists:
// anything else fails to compile or to link, it never misbehaves.
#pragma once

// Kernels and device functions are plain C++ functions here. (The toolkit's host_defines.h keeps
// these when they are defined first; undefined first in case another toolkit header came before.)
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __managed__
#define __global__
#define __device__
#define __host__
// Static shared memory is declared with AM_SHARED (cuda/launch.cuh), so that every block gets its
// own, freshly poisoned copy; `__shared__`, constant and managed memory are outside the subset.
#define __shared__ am_sim_unsupported__use_AM_SHARED_from_launch_cuh
#define __constant__ am_sim_unsupported__constant_memory
#define __managed__ am_sim_unsupported__managed_memory

#include_next <cuda_runtime.h>

#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __forceinline__
#define __forceinline__ inline

#include "am_sim/device.h"
