// Atomic file writes, read_file, and the XXH3 file checksum.
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/checksum.h"
#include "support/temp_dir.h"

using namespace am;
using test::dir_entries;
using test::TempDir;
namespace fs = std::filesystem;

namespace {}  // namespace

TEST_CASE("write_file_atomic writes and replaces and leaves no temp file", "[io]") {
  TempDir dir;
  std::string p = dir / "state.json";
  write_file_atomic(p, "first");
  CHECK(read_file(p) == "first");
  write_file_atomic(p, std::string("sec\0nd", 6));  // binary content, shorter than before
  CHECK(read_file(p) == std::string("sec\0nd", 6));
  write_file_atomic(dir / "empty", "");
  CHECK(read_file(dir / "empty").empty());
  CHECK(dir_entries(dir.path()) == std::vector<std::string>{"empty", "state.json"});
}

TEST_CASE("AtomicFile without commit leaves the target untouched and removes the temp", "[io]") {
  TempDir dir;
  std::string p = dir / "weights.bin";
  write_file_atomic(p, "old");
  {
    AtomicFile f(p);
    f.write("new content", 11);
    CHECK(fs::exists(f.temp_path()));
    CHECK(fs::path(f.temp_path()).parent_path() == dir.path());
    // destroyed here, as if an exception had unwound the writer
  }
  CHECK(read_file(p) == "old");
  CHECK(dir_entries(dir.path()) == std::vector<std::string>{"weights.bin"});
}

TEST_CASE("atomic write and read errors name the path and the cause", "[io]") {
  TempDir dir;
  std::string missing_dir = dir / "no_such_dir/file.txt";
  CHECK_THROWS_AS(write_file_atomic(missing_dir, "x"), UserError);
  CHECK_THROWS_WITH(write_file_atomic(missing_dir, "x"),
                    Catch::Contains(missing_dir) && Catch::Contains("No such file or directory"));
  // The target is a directory: rename fails, the temp file must not stay behind.
  fs::create_directories(dir / "a_dir/inner");
  CHECK_THROWS_WITH(write_file_atomic(dir / "a_dir", "x"), Catch::Contains(dir / "a_dir"));
  CHECK(dir_entries(dir.path()) == std::vector<std::string>{"a_dir"});

  CHECK_THROWS_WITH(read_file(dir / "nope.txt"), Catch::Contains(dir / "nope.txt") && Catch::Contains("No such file"));
  CHECK_THROWS_WITH(read_file(dir / "a_dir"), Catch::Contains("directory"));
  CHECK_THROWS_AS(fsync_dir(dir / "nope"), UserError);
}

TEST_CASE("xxh3_file matches published XXH3-64 vectors and the one-shot hash", "[io]") {
  TempDir dir;
  // Published XXH3_64bits test vectors (seed 0), from the xxHash project.
  write_file_atomic(dir / "empty", "");
  CHECK(xxh3_file(dir / "empty") == "2d06800538d394c2");
  write_file_atomic(dir / "a", "a");
  CHECK(xxh3_file(dir / "a") == "e6c632b61e964e1f");
  CHECK(xxh3_hex("abc") == "78af5f94892f3950");

  // A file spanning more than one 8 MiB read: the streamed hash equals the one-shot hash.
  std::string big((size_t{8} << 20) + 12345, '\0');
  uint32_t x = 12345;
  for (char& c : big) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  write_file_atomic(dir / "big", big);
  std::string expect = fmt::format("{:016x}", XXH3_64bits(big.data(), big.size()));
  CHECK(xxh3_file(dir / "big") == expect);
  big[big.size() - 1] ^= 1;  // one bit in the second chunk changes the hash
  write_file_atomic(dir / "big", big);
  CHECK(xxh3_file(dir / "big") != expect);
  CHECK_THROWS_WITH(xxh3_file(dir / "missing"), Catch::Contains(dir / "missing"));
}
