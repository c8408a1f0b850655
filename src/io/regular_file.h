// Opening a file for reading without trusting what is at its path. Every file the framework reads
// (shards, dataset.json, tokenizers, configs, sweep files, checkpoint files, text inputs) is opened
// here: with O_NONBLOCK, so that a FIFO or a device cannot block the open, then checked with fstat
// on the descriptor and refused unless it is a regular file (a FIFO, a character or block device, a
// directory or a socket gives a UserError naming the path and what it is).
//
//   RegularFile f = open_regular_file(path, "token shard");   // f.fd(), f.size(), f.status()
//   std::string text = read_regular_file(path, "config file");
//   std::unique_ptr<std::istream> in = open_regular_stream(path, "input file");
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <istream>
#include <memory>
#include <string>
#include <string_view>

namespace am {

// An open, read-only descriptor of a regular file (RAII: closed on destruction).
class RegularFile {
 public:
  RegularFile(int fd, const struct stat& st) : fd_(fd), st_(st) {}
  RegularFile(RegularFile&& o) noexcept;
  RegularFile& operator=(RegularFile&&) = delete;
  RegularFile(const RegularFile&) = delete;
  ~RegularFile();

  int fd() const { return fd_; }
  int release();  // the caller owns the descriptor from now on
  int64_t size() const { return static_cast<int64_t>(st_.st_size); }
  const struct stat& status() const { return st_; }  // fstat of the descriptor at open

 private:
  int fd_;
  struct stat st_;
};

// `what` names the file's role in messages ("cannot open token shard 'x': ...").
RegularFile open_regular_file(const std::string& path, std::string_view what);
std::string read_regular_file(const std::string& path, std::string_view what);
std::unique_ptr<std::istream> open_regular_stream(const std::string& path, std::string_view what);

// Whether `path` still names the file `was` describes (same device, inode, size and modification
// time): false when it was truncated, rewritten or replaced, or is gone.
bool same_file(const std::string& path, const struct stat& was);

// "a FIFO", "a directory", "a character device", ... for an st_mode (messages, tests).
const char* file_kind(unsigned mode);

}  // namespace am
