#include "io/tfrecord.h"

#include <boost/crc.hpp>

#include <cstring>

namespace am {

uint32_t crc32c(std::string_view bytes) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t c = crc32c(bytes);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

namespace {

template <typename T>
void append_le(std::string& out, T v) {  // little-endian hosts (x86-64, aarch64)
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

template <typename T>
T read_le(std::string_view bytes, size_t pos) {
  T v;
  std::memcpy(&v, bytes.data() + pos, sizeof(T));
  return v;
}

}  // namespace

std::string tfrecord_frame(std::string_view data) {
  std::string len;
  append_le<uint64_t>(len, data.size());
  std::string out = len;
  append_le<uint32_t>(out, masked_crc32c(len));
  out.append(data.data(), data.size());
  append_le<uint32_t>(out, masked_crc32c(data));
  return out;
}

TfRecords read_tfrecords(std::string_view bytes) {
  TfRecords r;
  size_t pos = 0;
  while (bytes.size() - pos >= 12) {
    const uint64_t n = read_le<uint64_t>(bytes, pos);
    if (read_le<uint32_t>(bytes, pos + 8) != masked_crc32c(bytes.substr(pos, 8))) break;
    if (n > bytes.size() - pos - 12 || bytes.size() - pos - 12 - n < 4) break;
    const std::string_view data = bytes.substr(pos + 12, n);
    if (read_le<uint32_t>(bytes, pos + 12 + n) != masked_crc32c(data)) break;
    r.records.emplace_back(data);
    pos += 16 + n;
  }
  r.valid_bytes = pos;
  return r;
}

}  // namespace am
