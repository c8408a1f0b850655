// A test's look-up of one resolved config key (its value and source) by path.
#pragma once

#include "config/config.h"

#include <catch2/catch.hpp>

#include <string>

namespace am::test {

inline const ResolvedKey& resolved(const Config& cfg, const std::string& path) {
  for (const ResolvedKey& r : cfg.resolved) {
    if (r.path == path) return r;
  }
  FAIL("no resolved key " << path);
  throw;  // unreachable
}

}  // namespace am::test
