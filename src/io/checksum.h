// Content hashes for checkpoint manifests: XXH3-64 (libxxhash), written as 16 lowercase hex
// digits, the same digits `xxhsum -H3` prints (its canonical big-endian form).
#pragma once

#include <string>
#include <string_view>

namespace am {

// XXH3-64 of a file's bytes, streamed in 8 MiB reads (constant memory for multi-GB files).
// UserError naming the path if it cannot be read.
std::string xxh3_file(const std::string& path);

// XXH3-64 of bytes in memory, same format.
std::string xxh3_hex(std::string_view bytes);

}  // namespace am
