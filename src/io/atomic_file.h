// Crash-safe file writes: content goes to a temporary name in the target's directory
// (".<name>.tmp-<pid>"), is fsynced, renamed over the target, and the directory is fsynced. A
// reader therefore sees either the old file or the complete new one, never a partial write.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace am {

// Streams content into `path` atomically. RAII: if commit() is never reached (an exception, an
// early return), the destructor removes the temporary file and `path` is untouched.
//   AtomicFile f(path);
//   f.write(header.data(), header.size());
//   f.write(big_buffer, n);          // any number of writes, no full copy in memory
//   f.commit();                      // fsync, rename over path, fsync directory
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);  // UserError if the temp file cannot be created
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  void write(const void* data, size_t bytes);  // UserError on failure (e.g. disk full)
  void commit();
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }

 private:
  void discard() noexcept;

  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

void write_file_atomic(const std::string& path, std::string_view content);

// The whole file as bytes; UserError naming the path if it cannot be read or is not a regular
// file (io/regular_file.h).
std::string read_file(const std::string& path);

// fsync of a directory, so that a rename or a new entry in it survives a crash.
void fsync_dir(const std::string& dir);

// fsync of an existing file (opened read-only).
void fsync_file(const std::string& path);

}  // namespace am
