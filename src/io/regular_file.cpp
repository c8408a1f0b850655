#include "io/regular_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ext/stdio_filebuf.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include "core/error.h"

namespace am {

namespace {

std::string errno_text(int e) { return std::generic_category().message(e); }

// An istream that owns its stdio_filebuf (which owns the descriptor).
class FdStream : public std::istream {
 public:
  explicit FdStream(int fd) : std::istream(nullptr), buf_(fd, std::ios::in | std::ios::binary) { rdbuf(&buf_); }

 private:
  __gnu_cxx::stdio_filebuf<char> buf_;
};

}  // namespace

const char* file_kind(unsigned mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

RegularFile::RegularFile(RegularFile&& o) noexcept : fd_(std::exchange(o.fd_, -1)), st_(o.st_) {}

RegularFile::~RegularFile() {
  if (fd_ >= 0) ::close(fd_);
}

int RegularFile::release() { return std::exchange(fd_, -1); }

namespace {

[[noreturn]] void not_regular(const std::string& path, std::string_view what, unsigned mode) {
  throw UserError(fmt::format("{} '{}' is {}, not a regular file", what, path, file_kind(mode)),
                  "give the path of a regular file");
}

}  // namespace

RegularFile open_regular_file(const std::string& path, std::string_view what) {
  // A device is refused before it is opened at all (opening one can have effects); the fstat on
  // the descriptor below is what counts (the path may change in between).
  struct stat before {};
  if (::stat(path.c_str(), &before) == 0 && !S_ISREG(before.st_mode)) not_regular(path, what, before.st_mode);
  int fd = -1;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int e = errno;
    fail("cannot open {} '{}': {}", what, path, errno_text(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail("cannot stat {} '{}': {}", what, path, errno_text(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    not_regular(path, what, st.st_mode);
  }
  // Regular files ignore O_NONBLOCK; cleared anyway so that reads behave as usual.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return RegularFile(fd, st);
}

bool same_file(const std::string& path, const struct stat& was) {
  struct stat now {};
  if (::stat(path.c_str(), &now) != 0) return false;
  return now.st_dev == was.st_dev && now.st_ino == was.st_ino && now.st_size == was.st_size &&
         now.st_mtim.tv_sec == was.st_mtim.tv_sec && now.st_mtim.tv_nsec == was.st_mtim.tv_nsec;
}

std::string read_regular_file(const std::string& path, std::string_view what) {
  const RegularFile f = open_regular_file(path, what);
  std::string out;
  if (f.size() > 0) out.reserve(static_cast<size_t>(f.size()));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(f.fd(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      fail("cannot read {} '{}': {}", what, path, errno_text(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::unique_ptr<std::istream> open_regular_stream(const std::string& path, std::string_view what) {
  RegularFile f = open_regular_file(path, what);
  return std::make_unique<FdStream>(f.release());
}

}  // namespace am
