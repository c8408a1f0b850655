#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "io/regular_file.h"

namespace am {
namespace fs = std::filesystem;

namespace {

std::string errno_text(int e) { return std::generic_category().message(e); }

std::string dir_of(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  fs::path p(path);
  std::string name = p.filename().string();
  if (name.empty() || name == "." || name == "..") {
    fail("cannot write '{}': not a file name", path);
  }
  tmp_ = (p.parent_path() / fmt::format(".{}.tmp-{}", name, ::getpid())).string();
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    int e = errno;
    throw UserError(fmt::format("cannot create '{}' (temporary file for '{}'): {}", tmp_, path, errno_text(e)),
                    "check that the directory exists and is writable");
  }
}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

void AtomicFile::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t bytes) {
  AM_CHECK(fd_ >= 0 && !committed_, "write to a closed AtomicFile for {}", path_);
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    // Linux transfers at most ~2 GiB per call; partial writes and EINTR are retried.
    size_t chunk = bytes < (size_t{1} << 30) ? bytes : (size_t{1} << 30);
    ssize_t n = ::write(fd_, p, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      discard();
      throw UserError(fmt::format("cannot write '{}': {}", path_, errno_text(e)),
                      e == ENOSPC ? "free disk space or write somewhere else" : "");
    }
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  AM_CHECK(fd_ >= 0 && !committed_, "commit of a closed AtomicFile for {}", path_);
  // A delayed write error (NFS, disk full on flush) shows up in fsync or close.
  if (::fsync(fd_) != 0) {
    int e = errno;
    discard();
    fail("cannot write '{}': fsync failed: {}", path_, errno_text(e));
  }
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    int e = errno;
    discard();
    fail("cannot write '{}': close failed: {}", path_, errno_text(e));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    int e = errno;
    discard();
    fail("cannot write '{}': rename from '{}' failed: {}", path_, tmp_, errno_text(e));
  }
  committed_ = true;
  fsync_dir(dir_of(path_));
}

void write_file_atomic(const std::string& path, std::string_view content) {
  AtomicFile f(path);
  f.write(content.data(), content.size());
  f.commit();
}

std::string read_file(const std::string& path) { return read_regular_file(path, "file"); }

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    fail("cannot open directory '{}' to fsync it: {}", dir, errno_text(e));
  }
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  // Some filesystems do not support fsync on directories; that is not an error of ours.
  if (rc != 0 && e != EINVAL && e != ENOTSUP) fail("cannot fsync directory '{}': {}", dir, errno_text(e));
}

void fsync_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    fail("cannot open '{}' to fsync it: {}", path, errno_text(e));
  }
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0) fail("cannot fsync '{}': {}", path, errno_text(e));
}

}  // namespace am
