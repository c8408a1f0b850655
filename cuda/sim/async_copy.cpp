// Pinned host memory and asynchronous copies in the simulator: cudaMallocHost / cudaHostAlloc /
// cudaFreeHost and cudaMemcpyAsync (docs/simulator.md, "Asynchronous copies").
//
// A copy between pinned host memory and the device is a stream operation: it runs when its stream
// runs it (at once with eager streams, at the next synchronisation with lazy ones) and the host
// does not wait. The host side of a host-to-device copy must stay unchanged until the copy has run:
// the simulator keeps the bytes it saw at the call and fails when the copy runs and finds them
// changed, so with lazy streams a program that refills its pinned buffer before synchronising is
// reported. Pageable host memory is staged by the host as the driver does (a synchronous copy,
// counted as a host synchronisation).
#include "sim_internal.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

using namespace am::sim;

namespace {

std::mutex g_mu;
std::map<uintptr_t, size_t> g_pinned;  // base -> bytes

bool is_pinned(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_pinned.upper_bound(a);
  if (it == g_pinned.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second;
}

cudaError_t pinned_alloc(void** p, size_t bytes) {
  *p = std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
  if (!*p) return cudaErrorMemoryAllocation;
  std::lock_guard<std::mutex> lock(g_mu);
  g_pinned[reinterpret_cast<uintptr_t>(*p)] = bytes;
  return cudaSuccess;
}

}  // namespace

extern "C" {

cudaError_t cudaMallocHost(void** p, size_t bytes) { return pinned_alloc(p, bytes); }
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int) { return pinned_alloc(p, bytes); }

cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  drain_all();  // a queued copy may still read or write it
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_pinned.erase(reinterpret_cast<uintptr_t>(p)) == 0) {
      fail(fmt::format("cudaFreeHost({}): not memory from cudaMallocHost / cudaHostAlloc", p));
    }
  }
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  const bool dd = in_arena(dst), sd = in_arena(src);
  if (kind == cudaMemcpyDefault)
    kind = dd ? (sd ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice) : cudaMemcpyDeviceToHost;
  const bool ok = (kind == cudaMemcpyHostToDevice && dd && !sd) || (kind == cudaMemcpyDeviceToHost && !dd && sd) ||
                  (kind == cudaMemcpyDeviceToDevice && dd && sd);
  if (!ok) {
    fail(fmt::format("cudaMemcpyAsync (kind {}): destination {} is {} memory and source {} is {} memory", int(kind),
                     dst, dd ? "device" : "host", src, sd ? "device" : "host"));
  }
  Counters& c = mutable_counters();
  if (kind == cudaMemcpyDeviceToDevice) {
    ++c.memcpy_d2d;
    enqueue(
        stream, "cudaMemcpyAsync device to device",
        [=] {
          runtime_access(src, bytes, false, false, "cudaMemcpyAsync device to device");
          runtime_access(dst, bytes, true, false, "cudaMemcpyAsync device to device");
          ArenaOpen open;
          std::memmove(dst, src, bytes);
          shadow_copy(dst, src, bytes);
        },
        false);
    return cudaSuccess;
  }
  const bool h2d = kind == cudaMemcpyHostToDevice;
  const void* host = h2d ? src : dst;
  if (h2d) {
    ++c.memcpy_h2d;
    c.bytes_h2d += bytes;
  } else {
    ++c.memcpy_d2h;
    c.bytes_d2h += bytes;
  }
  if (!is_pinned(host, bytes)) {
    // Pageable memory: the host copies through a staging buffer and waits (a synchronisation).
    ++c.sync_memcpy;
    host_sync_legacy();
  }
  if (h2d) {
    auto seen =
        std::make_shared<std::vector<char>>(static_cast<const char*>(src), static_cast<const char*>(src) + bytes);
    const bool pinned = is_pinned(src, bytes);
    enqueue(
        stream, "cudaMemcpyAsync host to device",
        [=] {
          if (pinned && std::memcmp(src, seen->data(), bytes) != 0) {
            fail(
                fmt::format("cudaMemcpyAsync host to device: the pinned host buffer at {} ({} bytes) changed between "
                            "the call and the copy; it must stay unchanged until the stream is synchronised",
                            src, bytes));
          }
          runtime_access(dst, bytes, true, false, "cudaMemcpyAsync host to device");
          ArenaOpen open;
          std::memcpy(dst, seen->data(), bytes);
        },
        false);
  } else {
    enqueue(
        stream, "cudaMemcpyAsync device to host",
        [=] {
          runtime_access(src, bytes, false, true, "cudaMemcpyAsync device to host");
          ArenaOpen open;
          std::memcpy(dst, src, bytes);
        },
        false);
  }
  if (!is_pinned(host, bytes)) host_sync_stream(stream);  // pageable: the call returns once the copy is done
  return cudaSuccess;
}

}  // extern "C"
