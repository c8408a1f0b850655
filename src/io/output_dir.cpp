#include "io/output_dir.h"

#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace am {
namespace fs = std::filesystem;

namespace {

// The first existing path among dir, its parent, its parent's parent, ... ("." for a relative path
// none of whose components exist).
fs::path nearest_existing(const fs::path& dir) {
  std::error_code ec;
  fs::path p = dir;
  while (!p.empty() && !fs::exists(p, ec)) {
    if (ec) return p;                                         // e.g. a component is a file: stat fails with ENOTDIR
    if (fs::is_symlink(fs::symlink_status(p, ec))) return p;  // a link to nothing is in the way
    p = p.parent_path();
  }
  return p.empty() ? fs::path(".") : p;
}

}  // namespace

void check_output_dir(const std::string& dir, std::string_view what) {
  const fs::path target = fs::path(dir).lexically_normal();
  const fs::path base = nearest_existing(target);
  std::error_code ec;
  const fs::file_status st = fs::status(base, ec);
  if (ec || !fs::is_directory(st)) {
    std::error_code lec;
    const bool dangling = !fs::exists(st) && fs::is_symlink(fs::symlink_status(base, lec));
    const std::string is = dangling ? "it is a symbolic link to nothing" : ec ? ec.message() : "it is not a directory";
    if (base == target) {
      throw UserError(fmt::format("{} '{}' cannot be used as a directory: {}", what, dir, is),
                      fmt::format("remove that file or set {} to a directory", what));
    }
    throw UserError(fmt::format("{} '{}' cannot be created: '{}' is in the way ({})", what, dir, base.string(), is),
                    fmt::format("set {} to a path inside a directory", what));
  }
  if (::access(base.c_str(), W_OK | X_OK) != 0) {
    const std::error_code e(errno, std::generic_category());
    throw UserError(fmt::format("{} '{}' is not writable: '{}': {}", what, dir, base.string(), e.message()),
                    fmt::format("set {} to a directory you can write to", what));
  }
}

void create_output_dir(const std::string& dir, std::string_view what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw UserError(fmt::format("{} '{}' cannot be created: {}", what, dir, ec.message()),
                    fmt::format("set {} to a directory you can write to", what));
  }
}

}  // namespace am
