// The CUDA runtime API of the simulator: the device's properties, memory (cudaMalloc, cudaFree,
// cudaMemcpy with its kinds checked against the pointers, cudaMemset), errors, and kernel launches
// (configuration and pointer arguments checked, then queued on their stream: streams.cpp).
#include "sim_internal.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

using namespace am::sim;

namespace {

int g_device = 0;
std::map<const void*, int> g_max_dynamic_smem;  // cudaFuncSetAttribute's, per kernel

bool is_device(const void* p) { return am::sim::in_arena(p); }

const char* copy_name(cudaMemcpyKind k) {
  switch (k) {
    case cudaMemcpyHostToDevice:
      return "cudaMemcpy host to device";
    case cudaMemcpyDeviceToHost:
      return "cudaMemcpy device to host";
    case cudaMemcpyDeviceToDevice:
      return "cudaMemcpy device to device";
    default:
      return "cudaMemcpy";
  }
}

}  // namespace

extern "C" {

cudaError_t cudaGetLastError(void) { return last_error(true); }
cudaError_t cudaPeekAtLastError(void) { return last_error(false); }

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorNotReady:
      return "device not ready";
    default:
      return "unknown error (simulator)";
  }
}
const char* cudaGetErrorName(cudaError_t e) { return cudaGetErrorString(e); }

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = g_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device != 0) {
    set_last_error(cudaErrorInvalidDevice);
    return cudaErrorInvalidDevice;
  }
  g_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "autonomoe CUDA simulator (CPU)");
  prop->major = 9;
  prop->minor = 0;
  prop->totalGlobalMem = device_bytes_limit();
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = 227 * 1024;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
  prop->multiProcessorCount = 132;
  prop->regsPerBlock = 65536;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = 227 * 1024;
      return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = 48 * 1024;
      return cudaSuccess;
    case cudaDevAttrMultiProcessorCount:
      *value = 132;
      return cudaSuccess;
    case cudaDevAttrWarpSize:
      *value = 32;
      return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock:
      *value = 1024;
      return cudaSuccess;
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  if (value < 0 || value > 227 * 1024) return cudaErrorInvalidValue;
  g_max_dynamic_smem[func] = value;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  *total = device_bytes_limit();
  *free_bytes = *total - device_bytes_in_use();
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  ++mutable_counters().sync_malloc;
  *p = arena_alloc(bytes);
  if (!*p) {
    set_last_error(cudaErrorMemoryAllocation);
    return cudaErrorMemoryAllocation;
  }
  mutable_counters().peak_device_bytes = std::max(mutable_counters().peak_device_bytes, device_bytes_in_use());
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  ++mutable_counters().sync_free;
  drain_all();  // cudaFree waits for the device
  host_sync_legacy();
  arena_free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  const bool dd = is_device(dst), sd = is_device(src);
  if (kind == cudaMemcpyDefault) {
    kind = dd ? (sd ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
              : (sd ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  }
  const bool want_dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool want_sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyHostToHost || dd != want_dd || sd != want_sd) {
    fail(fmt::format("{}: destination {} is {} memory and source {} is {} memory", copy_name(kind), dst,
                     dd ? "device" : "host", src, sd ? "device" : "host"));
  }
  const char* name = copy_name(kind);
  if (kind == cudaMemcpyDeviceToDevice) {
    ++mutable_counters().memcpy_d2d;
    // Asynchronous with respect to the host: one operation on the legacy stream.
    enqueue(
        nullptr, name,
        [=] {
          runtime_access(src, bytes, false, false, name);
          runtime_access(dst, bytes, true, false, name);
          ArenaOpen open;
          std::memmove(dst, src, bytes);
          shadow_copy(dst, src, bytes);
        },
        false);
    return cudaSuccess;
  }
  ++mutable_counters().sync_memcpy;
  if (kind == cudaMemcpyHostToDevice) {
    ++mutable_counters().memcpy_h2d;
    mutable_counters().bytes_h2d += bytes;
  } else {
    ++mutable_counters().memcpy_d2h;
    mutable_counters().bytes_d2h += bytes;
  }
  host_sync_legacy();
  // The host's buffer is read (or written) now, so the copy runs now, whatever the stream mode.
  std::vector<char> staged;
  if (kind == cudaMemcpyHostToDevice)
    staged.assign(static_cast<const char*>(src), static_cast<const char*>(src) + bytes);
  enqueue(
      nullptr, name,
      [&] {
        ArenaOpen open;
        if (kind == cudaMemcpyHostToDevice) {
          runtime_access(dst, bytes, true, false, name);
          std::memcpy(dst, staged.data(), bytes);
        } else {
          runtime_access(src, bytes, false, true, name);
          std::memcpy(dst, src, bytes);
        }
      },
      false);
  host_sync_legacy();
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  if (!is_device(dst)) fail(fmt::format("cudaMemset: {} is not device memory", dst));
  ++mutable_counters().memsets;
  enqueue(
      stream, "cudaMemset",
      [=] {
        runtime_access(dst, bytes, true, false, "cudaMemset");
        ArenaOpen open;
        std::memset(dst, value, bytes);
      },
      false);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* dst, int value, size_t bytes) { return cudaMemsetAsync(dst, value, bytes, nullptr); }

}  // extern "C"

namespace am::sim {

void submit_launch(LaunchRequest&& req) {
  ++mutable_counters().kernel_launches;
  const dim3 g = req.grid, b = req.block;
  const uint64_t threads = uint64_t(b.x) * b.y * b.z;
  int smem_limit = 48 * 1024;
  if (auto it = g_max_dynamic_smem.find(req.key); it != g_max_dynamic_smem.end())
    smem_limit = std::max(smem_limit, it->second);
  if (threads == 0 || threads > 1024 || b.z > 64 || g.x == 0 || g.y == 0 || g.z == 0 || g.x > 0x7fffffffu ||
      g.y > 65535 || g.z > 65535) {
    std::fprintf(stderr, "[cuda-sim] launch of %s with grid (%u,%u,%u) block (%u,%u,%u): invalid configuration\n",
                 req.kernel, g.x, g.y, g.z, b.x, b.y, b.z);
    set_last_error(cudaErrorInvalidConfiguration);
    return;
  }
  if (req.smem > size_t(smem_limit)) {
    std::fprintf(stderr, "[cuda-sim] launch of %s asks for %zu bytes of dynamic shared memory; the limit is %d%s\n",
                 req.kernel, req.smem, smem_limit,
                 smem_limit == 48 * 1024 ? " (raise it with cudaFuncSetAttribute MaxDynamicSharedMemorySize)" : "");
    set_last_error(cudaErrorInvalidValue);
    return;
  }
  for (size_t i = 0; i < req.args.size(); ++i) {
    const KernelArg& a = req.args[i];
    if (a.kind != KernelArg::Pointer || a.ptr == nullptr) continue;
    const Allocation* al = find_allocation(a.ptr);
    if (!in_arena(a.ptr)) {
      fail(fmt::format("launch of {}: argument {} ({}) is a host pointer: kernels reach only device memory", req.kernel,
                       i + 1, a.ptr));
    }
    if (!al || al->freed) {
      fail(fmt::format("launch of {}: argument {} ({}) points to freed device memory ({})", req.kernel, i + 1, a.ptr,
                       describe_address(a.ptr)));
    }
  }
  auto shared = std::make_shared<LaunchRequest>(std::move(req));
  enqueue(shared->stream, shared->kernel, [shared] { run_grid(*shared, settings().schedule); });
}

}  // namespace am::sim
