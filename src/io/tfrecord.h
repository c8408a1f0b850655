// TFRecord framing, the container of TensorBoard's event files: each record is
//   uint64 length | uint32 masked CRC32C of the length's 8 bytes | data | uint32 masked CRC32C of data
// little-endian, where masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (CRC32C: the Castagnoli
// polynomial 0x1EDC6F41, reflected, computed by Boost.CRC).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace am {

uint32_t crc32c(std::string_view bytes);
uint32_t masked_crc32c(std::string_view bytes);

// One record, framed.
std::string tfrecord_frame(std::string_view data);

// The records of a TFRecord file's bytes, in order, up to the first one that is cut short or fails
// either CRC (a crash while appending leaves such a tail); `valid_bytes` is where the good ones end.
struct TfRecords {
  std::vector<std::string> records;
  size_t valid_bytes = 0;
};
TfRecords read_tfrecords(std::string_view bytes);

}  // namespace am
