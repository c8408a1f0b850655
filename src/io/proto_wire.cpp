#include "io/proto_wire.h"

#include <algorithm>
#include <cstring>

namespace am {

void ProtoWriter::varint(uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<char>(v));
}

void ProtoWriter::varint_field(int field, uint64_t v) {
  key(field, 0);
  varint(v);
}

void ProtoWriter::double_field(int field, double v) {
  key(field, 1);
  char b[8];
  std::memcpy(b, &v, 8);  // little-endian hosts only (x86-64, aarch64)
  out_.append(b, 8);
}

void ProtoWriter::float_field(int field, float v) {
  key(field, 5);
  char b[4];
  std::memcpy(b, &v, 4);
  out_.append(b, 4);
}

void ProtoWriter::bytes_field(int field, std::string_view bytes) {
  key(field, 2);
  varint(bytes.size());
  out_.append(bytes.data(), bytes.size());
}

namespace {

bool read_varint(std::string_view m, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && pos < m.size(); shift += 7) {
    const auto b = static_cast<uint8_t>(m[pos++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

}  // namespace

std::optional<uint64_t> find_varint_field(std::string_view m, int field) {
  size_t pos = 0;
  while (pos < m.size()) {
    uint64_t key = 0, v = 0;
    if (!read_varint(m, pos, key)) return std::nullopt;
    const int type = static_cast<int>(key & 7);
    if (type == 0) {
      if (!read_varint(m, pos, v)) return std::nullopt;
      if (static_cast<int>(key >> 3) == field) return v;
    } else if (type == 1 || type == 5) {
      pos += type == 1 ? 8 : 4;
    } else if (type == 2) {
      if (!read_varint(m, pos, v) || v > m.size() - std::min(pos, m.size())) return std::nullopt;
      pos += v;
    } else {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace am
