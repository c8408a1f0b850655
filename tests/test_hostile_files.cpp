// Hostile files (issue 10 point 2): a FIFO, a device or a directory where a file is expected is
// refused with an error naming the path, without blocking (a FIFO opened without O_NONBLOCK would
// hang these tests until ctest's timeout). Also output directories (point 5).
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "core/error.h"
#include "data/dataset_meta.h"
#include "data/documents.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "io/atomic_file.h"
#include "io/checksum.h"
#include "io/output_dir.h"
#include "io/regular_file.h"
#include "io/safetensors.h"
#include "support/temp_dir.h"
#include "sweep/sweep_file.h"

using namespace am;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string make_fifo(const TempDir& dir, const std::string& name) {
  const std::string p = dir / name;
  REQUIRE(::mkfifo(p.c_str(), 0600) == 0);
  return p;
}

std::string make_dir(const TempDir& dir, const std::string& name) {
  fs::create_directories(dir / name);
  return dir / name;
}

}  // namespace

TEST_CASE("open_regular_file refuses a FIFO, a device and a directory, naming the path", "[io][hostile]") {
  TempDir dir("hostile");
  const std::string fifo = make_fifo(dir, "pipe");
  CHECK_THROWS_WITH(open_regular_file(fifo, "token shard"), Catch::Contains("token shard '" + fifo + "' is a FIFO"));
  CHECK_THROWS_WITH(read_regular_file("/dev/null", "config file"),
                    Catch::Contains("config file '/dev/null' is a character device"));
  CHECK_THROWS_WITH(read_regular_file("/dev/zero", "config file"), Catch::Contains("character device"));
  const std::string d = make_dir(dir, "sub");
  CHECK_THROWS_WITH(open_regular_stream(d, "input file"), Catch::Contains("input file '" + d + "' is a directory"));
  CHECK_THROWS_WITH(read_regular_file(dir / "absent", "dataset description"),
                    Catch::Contains("cannot open dataset description '" + (dir / "absent") + "'"));
  write_file_atomic(dir / "ok.txt", "line 1\nline 2\n");
  CHECK(read_regular_file(dir / "ok.txt", "file") == "line 1\nline 2\n");
  auto in = open_regular_stream(dir / "ok.txt", "file");
  std::string line;
  REQUIRE(std::getline(*in, line));
  CHECK(line == "line 1");
  const RegularFile f = open_regular_file(dir / "ok.txt", "file");
  CHECK(f.size() == 14);
  CHECK(same_file(dir / "ok.txt", f.status()));
  write_file_atomic(dir / "ok.txt", "line 1\nline 2\n");  // same content, a new file (rename)
  CHECK_FALSE(same_file(dir / "ok.txt", f.status()));
}

TEST_CASE("every reader refuses a FIFO or a directory where its file is expected", "[io][hostile]") {
  TempDir dir("hostile-readers");
  const std::string fifo = make_fifo(dir, "x.bin");
  const std::string d = make_dir(dir, "d.bin");
  CHECK_THROWS_WITH(ShardReader(fifo), Catch::Contains(fifo) && Catch::Contains("FIFO"));
  CHECK_THROWS_WITH(ShardReader(d), Catch::Contains(d) && Catch::Contains("directory"));
  CHECK_THROWS_WITH(SafetensorsFile(fifo), Catch::Contains(fifo) && Catch::Contains("FIFO"));
  CHECK_THROWS_WITH(xxh3_file(fifo), Catch::Contains(fifo) && Catch::Contains("FIFO"));
  CHECK_THROWS_WITH(read_dataset_meta_file(fifo), Catch::Contains(fifo) && Catch::Contains("FIFO"));
  CHECK_THROWS_WITH(Tokenizer(fifo), Catch::Contains(fifo) && Catch::Contains("FIFO"));
  CHECK_THROWS_WITH(Tokenizer(d), Catch::Contains(d) && Catch::Contains("directory"));
  CHECK_THROWS_WITH(load_config(fifo), Catch::Contains(fifo) && Catch::Contains("FIFO"));
  CHECK_THROWS_WITH(load_config(d), Catch::Contains(d) && Catch::Contains("directory"));
  CHECK_THROWS_WITH(read_sweep_file(fifo), Catch::Contains(fifo) && Catch::Contains("FIFO"));
  CHECK_THROWS_WITH(DocumentReader({fifo}), Catch::Contains(fifo) && Catch::Contains("FIFO"));
  CHECK_THROWS_WITH(DocumentReader({"/dev/zero"}), Catch::Contains("/dev/zero") && Catch::Contains("device"));
  CHECK_THROWS_WITH(read_file(fifo), Catch::Contains(fifo) && Catch::Contains("FIFO"));
}

TEST_CASE("a dataset.json that is a dangling symlink or a symlink loop is refused, not taken as absent",
          "[data][hostile]") {
  TempDir dir("meta-links");
  fs::create_directories(dir / "dangling");
  fs::create_directories(dir / "loop");
  fs::create_directories(dir / "absent");
  for (const char* sub : {"dangling", "loop", "absent"})
    write_file_atomic(dir / (std::string(sub) + "/s_000000.bin"), "x");
  fs::create_symlink(dir / "dangling/nowhere.json", dir / "dangling/dataset.json");
  fs::create_symlink(dir / "loop/dataset.json", dir / "loop/dataset.json");
  CHECK_THROWS_WITH(
      read_dataset_meta(dir / "dangling/s_*.bin"),
      Catch::Contains("'" + (dir / "dangling/dataset.json") + "' is a symbolic link that leads to no file"));
  CHECK_THROWS_WITH(read_dataset_meta(dir / "loop/s_*.bin"),
                    Catch::Contains("'" + (dir / "loop/dataset.json") + "' is a symbolic link that leads to no file") &&
                        Catch::Contains("symbolic links"));  // ELOOP: too many levels of symbolic links
  CHECK_FALSE(read_dataset_meta(dir / "absent/s_*.bin").has_value());
}

TEST_CASE("check_output_dir and create_output_dir refuse what cannot be a directory, naming the path",
          "[io][hostile]") {
  TempDir dir("outdir-links");
  fs::create_symlink(dir / "nowhere", dir / "dangling");
  CHECK_THROWS_WITH(check_output_dir(dir / "dangling", "the checkpoint directory"),
                    Catch::Contains("the checkpoint directory '" + (dir / "dangling") +
                                    "' cannot be used as a directory: "
                                    "it is a symbolic link to nothing"));
  CHECK_THROWS_WITH(check_output_dir(dir / "dangling/sub", "--out"),
                    Catch::Contains("'" + (dir / "dangling") + "' is in the way (it is a symbolic link to nothing)"));
  write_file_atomic(dir / "file", "x");
  CHECK_THROWS_WITH(create_output_dir(dir / "file/sub", "export --out"),
                    Catch::Contains("export --out '" + (dir / "file/sub") + "' cannot be created: "));
  CHECK_NOTHROW(create_output_dir(dir / "a/b", "export --out"));
  CHECK(fs::is_directory(dir / "a/b"));
}

TEST_CASE("check_output_dir refuses a file, a path inside a file, and accepts a new path", "[io][hostile]") {
  TempDir dir("outdir");
  write_file_atomic(dir / "file", "x");
  CHECK_THROWS_WITH(check_output_dir(dir / "file", "run.out_dir"),
                    Catch::Contains("run.out_dir '" + (dir / "file") + "' cannot be used as a directory"));
  CHECK_THROWS_WITH(check_output_dir(dir / "file/sub/deeper", "--out"),
                    Catch::Contains("--out '" + (dir / "file/sub/deeper") + "' cannot be created") &&
                        Catch::Contains("'" + (dir / "file") + "' is in the way"));
  CHECK_NOTHROW(check_output_dir(dir.str(), "run.out_dir"));
  CHECK_NOTHROW(check_output_dir(dir / "new/nested", "run.out_dir"));
  CHECK_FALSE(fs::exists(dir / "new"));  // creates nothing
  if (::geteuid() != 0) {                // root writes anywhere: permission bits do not stop it
    fs::create_directories(dir / "ro");
    fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    CHECK_THROWS_WITH(check_output_dir(dir / "ro/run", "run.out_dir"), Catch::Contains("is not writable"));
    fs::permissions(dir / "ro", fs::perms::owner_all);
  }
}
