// The simulator's cub::DeviceRadixSort::SortPairs: a stable ascending sort of (key, value) pairs
// by bits [begin_bit, end_bit) of the keys, with CUB's two-call temporary-storage protocol (a
// first call with d_temp_storage == nullptr asks for the size; the second must pass at least
// that much device memory). Runs as one operation on `stream` (cuda/sim/cub.cpp).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace am::sim {
cudaError_t radix_sort_pairs(void* temp, size_t& temp_bytes, const void* keys_in, void* keys_out, const void* vals_in,
                             void* vals_out, size_t key_size, bool key_signed, size_t val_size, int num_items,
                             int begin_bit, int end_bit, cudaStream_t stream);
}

namespace cub {
struct DeviceRadixSort {
  template <typename K, typename V>
  static cudaError_t SortPairs(void* d_temp_storage, size_t& temp_storage_bytes, const K* d_keys_in, K* d_keys_out,
                               const V* d_values_in, V* d_values_out, int num_items, int begin_bit = 0,
                               int end_bit = sizeof(K) * 8, cudaStream_t stream = 0) {
    static_assert(std::is_integral_v<K>, "the simulator sorts integer keys");
    return ::am::sim::radix_sort_pairs(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out, d_values_in,
                                       d_values_out, sizeof(K), std::is_signed_v<K>, sizeof(V), num_items, begin_bit,
                                       end_bit, stream);
  }
};
}  // namespace cub
