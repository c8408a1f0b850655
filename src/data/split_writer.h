// Writes one split of a dataset as numbered token shards DIR/NAME_SPLIT_000000.bin, ... of
// shard_tokens tokens each; the last shard holds the rest, and takes one extra token rather than
// leave a 1-token shard behind (a shard needs >= 2 tokens). Documents may continue across shards.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/shard.h"

namespace am {

// "NAME_SPLIT_000003.bin"
std::string shard_file_name(const std::string& name, const std::string& split, int index);

class SplitWriter {
 public:
  SplitWriter(std::string dir, std::string name, std::string split, int64_t vocab_size, int64_t shard_tokens);
  void write(const int32_t* tokens, size_t n);
  // Closes the last shard; returns the file names written (empty when no token was written).
  std::vector<std::string> finish();
  int64_t tokens() const { return tokens_; }

 private:
  std::string dir_, name_, split_;
  int64_t vocab_size_, shard_tokens_;
  std::unique_ptr<ShardWriter> cur_;
  std::vector<std::string> files_;
  bool has_pending_ = false;  // one token held back after a full shard
  int32_t pending_ = 0;
  int64_t tokens_ = 0;
  void open_next();
};

}  // namespace am
