#include "data/split_writer.h"

#include <filesystem>

#include "core/error.h"

namespace am {

std::string shard_file_name(const std::string& name, const std::string& split, int index) {
  return fmt::format("{}_{}_{:06d}.bin", name, split, index);
}

SplitWriter::SplitWriter(std::string dir, std::string name, std::string split, int64_t vocab_size, int64_t shard_tokens)
    : dir_(std::move(dir)),
      name_(std::move(name)),
      split_(std::move(split)),
      vocab_size_(vocab_size),
      shard_tokens_(shard_tokens) {
  if (shard_tokens < 2 || shard_tokens >= kShardMaxTokens) {
    fail("shard size {} tokens is out of range (valid: 2 .. {})", shard_tokens, kShardMaxTokens - 1);
  }
}

void SplitWriter::open_next() {
  if (cur_) cur_->close();
  const std::string file = shard_file_name(name_, split_, static_cast<int>(files_.size()));
  cur_ = std::make_unique<ShardWriter>((std::filesystem::path(dir_) / file).string(), vocab_size_);
  files_.push_back(file);
}

void SplitWriter::write(const int32_t* tokens, size_t n) {
  tokens_ += static_cast<int64_t>(n);
  size_t i = 0;
  while (i < n) {
    if (!cur_) open_next();
    const int64_t room = shard_tokens_ - cur_->tokens_written();
    if (room > 0) {
      const size_t take = std::min(n - i, static_cast<size_t>(room));
      cur_->write(tokens + i, take);
      i += take;
    } else if (!has_pending_) {
      pending_ = tokens[i++];  // wait for a second token before starting a new shard
      has_pending_ = true;
    } else {
      open_next();
      cur_->write(&pending_, 1);
      has_pending_ = false;
    }
  }
}

std::vector<std::string> SplitWriter::finish() {
  if (cur_) {
    if (has_pending_) cur_->write(&pending_, 1);
    has_pending_ = false;
    cur_->close();
    cur_.reset();
  }
  return files_;
}

}  // namespace am
