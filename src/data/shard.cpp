#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "io/mapped_files.h"
#include "io/regular_file.h"

namespace am {

static_assert(std::endian::native == std::endian::little, "token shards are little-endian");

int shard_token_bytes_for_vocab(int64_t vocab_size) {
  AM_CHECK(vocab_size > 0, "vocab_size {}", vocab_size);
  return vocab_size <= 65536 ? 2 : 4;
}

// ---- writer ----

ShardWriter::ShardWriter(const std::string& path, int64_t vocab_size)
    : path_(path),
      tmp_path_(path + ".tmp"),
      vocab_size_(vocab_size),
      token_bytes_(shard_token_bytes_for_vocab(vocab_size)) {
  f_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!f_) fail("{}: cannot create token shard: {}", tmp_path_, std::strerror(errno));
  // Placeholder header; close() rewrites it with the token count.
  std::array<int32_t, kShardHeaderInts> header{};
  if (std::fwrite(header.data(), 4, header.size(), f_) != header.size()) {
    fail("{}: write failed: {}", tmp_path_, std::strerror(errno));
  }
  buf_.reserve(1 << 20);
}

ShardWriter::~ShardWriter() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_path_.c_str());
  }
}

void ShardWriter::write(const int32_t* tokens, size_t n) {
  AM_CHECK(f_ != nullptr, "{}: write after close", path_);
  if (n_tokens_ + static_cast<int64_t>(n) > kShardMaxTokens) {
    fail("{}: a shard holds at most {} tokens (the count is an int32)", path_, kShardMaxTokens);
  }
  for (size_t i = 0; i < n; ++i) {
    const int32_t t = tokens[i];
    AM_CHECK(t >= 0 && t < vocab_size_, "{}: token {} outside the vocabulary [0, {})", path_, t, vocab_size_);
    const uint32_t u = static_cast<uint32_t>(t);
    buf_.push_back(static_cast<uint8_t>(u));
    buf_.push_back(static_cast<uint8_t>(u >> 8));
    if (token_bytes_ == 4) {
      buf_.push_back(static_cast<uint8_t>(u >> 16));
      buf_.push_back(static_cast<uint8_t>(u >> 24));
    }
    if (buf_.size() >= (1u << 20)) flush_buffer();
  }
  n_tokens_ += static_cast<int64_t>(n);
}

void ShardWriter::flush_buffer() {
  if (buf_.empty()) return;
  if (std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size()) {
    fail("{}: write failed: {}", tmp_path_, std::strerror(errno));
  }
  buf_.clear();
}

void ShardWriter::close() {
  AM_CHECK(f_ != nullptr, "{}: closed twice", path_);
  if (n_tokens_ < 2) fail("{}: a token shard needs at least 2 tokens, got {}", path_, n_tokens_);
  flush_buffer();
  std::array<int32_t, kShardHeaderInts> header{};
  header[0] = token_bytes_ == 2 ? kShardMagicU16 : kShardMagicU32;
  header[1] = token_bytes_ == 2 ? kShardVersionU16 : kShardVersionU32;
  header[2] = static_cast<int32_t>(n_tokens_);
  bool ok = std::fseek(f_, 0, SEEK_SET) == 0 && std::fwrite(header.data(), 4, header.size(), f_) == header.size() &&
            std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  const int err = errno;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok) {
    std::remove(tmp_path_.c_str());
    fail("{}: write failed: {}", tmp_path_, std::strerror(err));
  }
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    const int rerr = errno;
    std::remove(tmp_path_.c_str());
    fail("{}: cannot rename {} into place: {}", path_, tmp_path_, std::strerror(rerr));
  }
}

void write_shard(const std::string& path, const std::vector<int32_t>& tokens, int64_t vocab_size) {
  ShardWriter w(path, vocab_size);
  w.write(tokens);
  w.close();
}

// ---- reader ----

ShardReader::ShardReader(const std::string& path) : path_(path) {
  const RegularFile f = open_regular_file(path, "token shard");
  const int64_t file_bytes = f.size();
  if (file_bytes < kShardHeaderBytes) {
    throw UserError(fmt::format("{}: too short to be a token shard: {} bytes, the header alone is {}", path, file_bytes,
                                kShardHeaderBytes),
                    "token shards are written by `autonomoe-data encode` or llm.c's data scripts");
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(file_bytes), PROT_READ, MAP_SHARED, f.fd(), 0);
  const int map_err = errno;  // the mapping keeps the file alive after f closes
  if (map == MAP_FAILED) fail("{}: mmap failed: {}", path, std::strerror(map_err));
  map_ = map;
  map_bytes_ = static_cast<size_t>(file_bytes);
  status_ = f.status();
  register_mapping(map_, map_bytes_, path, "token shard");

  int32_t header[3];
  std::memcpy(header, map_, sizeof(header));
  const int32_t magic = header[0];
  version_ = header[1];
  const int64_t n = header[2];
  try {
    if (magic == kShardMagicU16) {
      token_bytes_ = 2;
      if (version_ != kShardVersionU16) {
        fail("{}: unknown token shard version {} for magic {} (expected {})", path, version_, magic, kShardVersionU16);
      }
    } else if (magic == kShardMagicU32) {
      token_bytes_ = 4;
      if (version_ != kShardVersionU32) {
        fail("{}: unknown token shard version {} for magic {} (expected {})", path, version_, magic, kShardVersionU32);
      }
    } else {
      throw UserError(fmt::format("{}: not a token shard: magic {} (expected {} or {})", path, magic, kShardMagicU16,
                                  kShardMagicU32),
                      "token shards are written by `autonomoe-data encode` or llm.c's data scripts");
    }
    if (n < 0) fail("{}: corrupt token shard: negative token count {}", path, n);
    const int64_t expected = kShardHeaderBytes + n * token_bytes_;
    if (file_bytes < expected) {
      fail("{}: truncated: header says {} tokens = {} bytes, file has {}", path, n, expected, file_bytes);
    }
    if (file_bytes > expected) {
      fail("{}: size mismatch: header says {} tokens = {} bytes, file has {} ({} extra bytes)", path, n, expected,
           file_bytes, file_bytes - expected);
    }
    if (n < 2) fail("{}: has {} tokens; a token shard needs at least 2", path, n);
  } catch (...) {
    unmap();
    throw;
  }
  n_tokens_ = n;
  tokens_ = static_cast<const uint8_t*>(map_) + kShardHeaderBytes;
  // Windows are read in a shuffled order: sequential readahead would only waste I/O.
  ::madvise(map_, map_bytes_, MADV_RANDOM);
}

ShardReader::ShardReader(ShardReader&& o) noexcept { *this = std::move(o); }

ShardReader& ShardReader::operator=(ShardReader&& o) noexcept {
  if (this != &o) {
    unmap();
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
    tokens_ = std::exchange(o.tokens_, nullptr);
    n_tokens_ = std::exchange(o.n_tokens_, 0);
    token_bytes_ = std::exchange(o.token_bytes_, 0);
    version_ = std::exchange(o.version_, 0);
    status_ = o.status_;
  }
  return *this;
}

ShardReader::~ShardReader() { unmap(); }

void ShardReader::unmap() {
  if (map_) {
    unregister_mapping(map_);
    ::munmap(map_, map_bytes_);
  }
  map_ = nullptr;
  map_bytes_ = 0;
  tokens_ = nullptr;
}

void ShardReader::check_unchanged() const {
  if (same_file(path_, status_)) return;
  throw UserError(fmt::format("{}: token shard was modified, truncated or replaced since this run "
                              "opened it ({} bytes then)",
                              path_, map_bytes_),
                  "never modify the shards of a running job; restore them and resume from the "
                  "last checkpoint");
}

uint32_t ShardReader::at(int64_t i) const {
  AM_CHECK(i >= 0 && i < n_tokens_, "{}: token index {} of {}", path_, i, n_tokens_);
  const uint8_t* p = tokens_ + i * token_bytes_;
  if (token_bytes_ == 2) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void ShardReader::read(int64_t offset, int64_t count, int32_t* out) const {
  AM_CHECK(offset >= 0 && count >= 0 && offset + count <= n_tokens_, "{}: read [{}, {}) of {}", path_, offset,
           offset + count, n_tokens_);
  const uint8_t* p = tokens_ + offset * token_bytes_;
  if (token_bytes_ == 2) {
    for (int64_t i = 0; i < count; ++i) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      out[i] = v;
    }
  } else {
    for (int64_t i = 0; i < count; ++i) {
      uint32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      // Values >= 2^31 become negative here; the loader's vocabulary check rejects them.
      out[i] = static_cast<int32_t>(v);
    }
  }
}

}  // namespace am
