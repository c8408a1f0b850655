// The simulator's cub::DeviceRadixSort::SortPairs (am_sim/radix_sort.h): CUB's temporary-storage
// protocol, then a stable sort by the key bits [begin_bit, end_bit) as one operation on the
// stream. Signed keys sort as CUB sorts them (the sign bit flipped, so negatives come first).
#include "am_sim/radix_sort.h"
#include "sim_internal.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

namespace am::sim {

cudaError_t radix_sort_pairs(void* temp, size_t& temp_bytes, const void* keys_in, void* keys_out, const void* vals_in,
                             void* vals_out, size_t key_size, bool key_signed, size_t val_size, int num_items,
                             int begin_bit, int end_bit, cudaStream_t stream) {
  // What CUB would ask for is device-dependent; the simulator asks for room for one copy of the
  // keys and values plus 256 bytes, and checks that the caller passes it.
  const size_t need = size_t(std::max(num_items, 0)) * (key_size + val_size) + 256;
  if (temp == nullptr) {
    temp_bytes = need;
    return cudaSuccess;
  }
  if (num_items < 0 || begin_bit < 0 || end_bit > int(key_size * 8) || begin_bit >= end_bit) {
    set_last_error(cudaErrorInvalidValue);
    return cudaErrorInvalidValue;
  }
  if (temp_bytes < need) {
    fail(fmt::format(
        "cub::DeviceRadixSort::SortPairs: temp_storage_bytes {} is less than the {} the size query returned",
        temp_bytes, need));
  }
  if (!in_arena(temp)) fail("cub::DeviceRadixSort::SortPairs: d_temp_storage is not device memory");
  enqueue(stream, "cub::DeviceRadixSort::SortPairs", [=] {
    const char* what = "cub::DeviceRadixSort::SortPairs";
    const size_t n = size_t(num_items);
    runtime_access(temp, need, true, false, what);
    runtime_access(keys_in, n * key_size, false, true, what);
    runtime_access(vals_in, n * val_size, false, true, what);
    runtime_access(keys_out, n * key_size, true, false, what);
    runtime_access(vals_out, n * val_size, true, false, what);
    ArenaOpen open;
    std::vector<uint64_t> bits(n);
    const uint64_t span = uint64_t(end_bit - begin_bit);
    const uint64_t mask = span >= 64 ? ~0ull : ((1ull << span) - 1);
    for (size_t i = 0; i < n; ++i) {
      uint64_t k = 0;
      std::memcpy(&k, static_cast<const char*>(keys_in) + i * key_size, key_size);
      if (key_signed) k ^= 1ull << (key_size * 8 - 1);
      bits[i] = (k >> begin_bit) & mask;
    }
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return bits[a] < bits[b]; });
    std::vector<char> kout(n * key_size), vout(n * val_size);
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(kout.data() + i * key_size, static_cast<const char*>(keys_in) + order[i] * key_size, key_size);
      std::memcpy(vout.data() + i * val_size, static_cast<const char*>(vals_in) + order[i] * val_size, val_size);
    }
    std::memcpy(keys_out, kout.data(), kout.size());
    std::memcpy(vals_out, vout.data(), vout.size());
  });
  return cudaSuccess;
}

}  // namespace am::sim
