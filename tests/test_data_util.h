// Helpers shared by the [data] tests: a fresh temporary directory (removed afterwards) and raw
// file writing that does not go through the code under test.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "support/temp_dir.h"

namespace am::test {

// The message of the UserError that f() throws ("" if it throws none).
template <typename F>
std::string user_error(F&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// A shard built byte by byte from the format description (header of 256 little-endian int32).
inline std::vector<uint8_t> raw_shard(int32_t magic, int32_t version, int32_t count,
                                      const std::vector<uint32_t>& tokens, int token_bytes) {
  std::vector<uint8_t> b(1024, 0);
  auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  put32(0, static_cast<uint32_t>(magic));
  put32(4, static_cast<uint32_t>(version));
  put32(8, static_cast<uint32_t>(count));
  for (uint32_t t : tokens) {
    for (int i = 0; i < token_bytes; ++i) b.push_back(static_cast<uint8_t>(t >> (8 * i)));
  }
  return b;
}

}  // namespace am::test
