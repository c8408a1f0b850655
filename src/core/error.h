// Errors. Two kinds, and only two:
//  - UserError: something the user can fix (a config key, a data file, a checkpoint). The CLI
//    prints its message (which names the file / key / value and what would be valid) and exits 1.
//  - AM_CHECK failures: a broken internal invariant (a bug). They name the source file and line.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace am {

class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& what, const std::string& hint = "")
      : std::runtime_error(hint.empty() ? what : what + "\n  ---> HINT: " + hint) {}
};

class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// fail("file {}: bad magic {}", path, magic) throws a UserError with the formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw UserError(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace am

// AM_CHECK(cond, "fmt", args...): internal invariant; throws InternalError naming file:line.
#define AM_CHECK(cond, ...)                                                                                 \
  do {                                                                                                      \
    if (!(cond)) {                                                                                          \
      throw ::am::InternalError(                                                                            \
          fmt::format("{}:{}: check failed: {}: {}", __FILE__, __LINE__, #cond, fmt::format(__VA_ARGS__))); \
    }                                                                                                       \
  } while (0)
