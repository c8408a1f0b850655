// The protocol-buffer wire format, the few pieces TensorBoard's event files need: a writer of
// varint, 64-bit, 32-bit and length-delimited fields, and a reader that finds one varint field.
// (https://protobuf.dev/programming-guides/encoding/: a field is the key (number << 3 | wire type)
// as a varint, then its value: 0 varint, 1 eight little-endian bytes, 2 a varint length and the
// bytes, 5 four little-endian bytes.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace am {

class ProtoWriter {
 public:
  void varint_field(int field, uint64_t v);             // int64, uint64, bool, enum (wire type 0)
  void double_field(int field, double v);               // wire type 1
  void float_field(int field, float v);                 // wire type 5
  void bytes_field(int field, std::string_view bytes);  // string, bytes, a nested message (type 2)
  const std::string& bytes() const { return out_; }

 private:
  void varint(uint64_t v);
  void key(int field, int wire_type) { varint(static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire_type)); }
  std::string out_;
};

// The value of the first occurrence of varint field `field` in a message; nullopt when it is
// absent, or when the message is malformed before it (a field cut short, an unknown wire type).
std::optional<uint64_t> find_varint_field(std::string_view message, int field);

}  // namespace am
