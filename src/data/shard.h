// Token shards in llm.c's format: a header of 256 little-endian int32 ([0] magic, [1] version,
// [2] number of tokens, the rest zero), then the tokens.
//   magic 20240520, version 1: uint16 tokens (vocabularies of at most 65536)
//   magic 20240801, version 7: uint32 tokens (larger vocabularies)
// ShardWriter streams tokens to a temporary file and renames it on close(); ShardReader mmaps a
// shard and validates it up front. Every error names the file.
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace am {

inline constexpr int32_t kShardMagicU16 = 20240520;
inline constexpr int32_t kShardVersionU16 = 1;
inline constexpr int32_t kShardMagicU32 = 20240801;
inline constexpr int32_t kShardVersionU32 = 7;
inline constexpr int kShardHeaderInts = 256;
inline constexpr int64_t kShardHeaderBytes = kShardHeaderInts * 4;  // 1024
inline constexpr int64_t kShardMaxTokens = INT32_MAX;               // the count is an int32 in the header

// 2 (uint16 tokens) when every id of a vocabulary of this size fits in 16 bits, else 4.
int shard_token_bytes_for_vocab(int64_t vocab_size);

// Streams tokens into `path`: writes `path`.tmp, and renames it to `path` in close(). A writer
// destroyed without close() removes its temporary file, so a half-written shard never appears.
class ShardWriter {
 public:
  ShardWriter(const std::string& path, int64_t vocab_size);
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;
  ~ShardWriter();

  // Appends n tokens; each must be in [0, vocab_size).
  void write(const int32_t* tokens, size_t n);
  void write(const std::vector<int32_t>& tokens) { write(tokens.data(), tokens.size()); }
  // Writes the header, flushes, and renames the temporary file to its final name.
  void close();

  int64_t tokens_written() const { return n_tokens_; }
  int token_bytes() const { return token_bytes_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string tmp_path_;
  int64_t vocab_size_;
  int token_bytes_;
  int64_t n_tokens_ = 0;
  std::FILE* f_ = nullptr;
  std::vector<uint8_t> buf_;  // encoded tokens waiting for fwrite
  void flush_buffer();
};

// Writes a whole shard in one call (tests, small tools).
void write_shard(const std::string& path, const std::vector<int32_t>& tokens, int64_t vocab_size);

// A read-only memory map of one validated shard (RAII: unmapped on destruction), registered with
// io/mapped_files.h so that a SIGBUS from it names the shard.
class ShardReader {
 public:
  explicit ShardReader(const std::string& path);
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;
  ShardReader(ShardReader&& o) noexcept;
  ShardReader& operator=(ShardReader&& o) noexcept;
  ~ShardReader();

  const std::string& path() const { return path_; }
  int64_t n_tokens() const { return n_tokens_; }
  int token_bytes() const { return token_bytes_; }  // 2 or 4
  int32_t version() const { return version_; }

  uint32_t at(int64_t i) const;  // token i, 0 <= i < n_tokens
  // Copies tokens [offset, offset + count) into out (count int32).
  void read(int64_t offset, int64_t count, int32_t* out) const;
  // UserError naming the shard when its path no longer names the file mapped (other size,
  // modification time or inode: truncated, rewritten or replaced since it was opened). A truncated
  // shard whose missing pages are read before this check ends the process via io/mapped_files.h.
  void check_unchanged() const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const uint8_t* tokens_ = nullptr;
  int64_t n_tokens_ = 0;
  int token_bytes_ = 0;
  int32_t version_ = 0;
  struct stat status_ {};  // of the file when it was mapped
  void unmap();
};

}  // namespace am
