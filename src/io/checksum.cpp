#include "io/checksum.h"

#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <memory>
#include <system_error>
#include <vector>

#include "core/error.h"
#include "io/regular_file.h"

namespace am {

namespace {

std::string to_hex(XXH64_hash_t h) { return fmt::format("{:016x}", h); }

struct StateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};

}  // namespace

std::string xxh3_file(const std::string& path) {
  constexpr size_t kChunk = size_t{8} << 20;
  const RegularFile f = open_regular_file(path, "file");
  std::unique_ptr<XXH3_state_t, StateDeleter> state(XXH3_createState());
  AM_CHECK(state != nullptr, "XXH3_createState failed");
  AM_CHECK(XXH3_64bits_reset(state.get()) == XXH_OK, "XXH3_64bits_reset failed");
  std::vector<char> buf(kChunk);
  for (;;) {
    ssize_t n = ::read(f.fd(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      fail("cannot hash '{}': read failed: {}", path, std::generic_category().message(e));
    }
    if (n == 0) break;
    AM_CHECK(XXH3_64bits_update(state.get(), buf.data(), static_cast<size_t>(n)) == XXH_OK,
             "XXH3_64bits_update failed");
  }
  return to_hex(XXH3_64bits_digest(state.get()));
}

std::string xxh3_hex(std::string_view bytes) { return to_hex(XXH3_64bits(bytes.data(), bytes.size())); }

}  // namespace am
