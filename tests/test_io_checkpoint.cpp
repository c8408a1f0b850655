// Crash-safe checkpoint directories: commit, abandon, verification failures, listing, pruning,
// stale temp dirs, and replacing an existing step.
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/checkpoint_dir.h"
#include "support/temp_dir.h"

using namespace am;
using test::dir_entries;
using test::TempDir;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

// A small checkpoint with two files (one in a subfolder).
std::string make_checkpoint(const std::string& root, int64_t step, const std::string& payload = "w") {
  CheckpointWriter w(root, step);
  write_file_atomic(w.path("model.bin"), payload + std::string(1000, 'x'));
  write_file_atomic(w.path("optim/rank0.bin"), "optimizer state " + std::to_string(step));
  return w.commit();
}

std::vector<int64_t> steps(const std::string& root) {
  std::vector<int64_t> out;
  for (const auto& e : list_checkpoints(root)) out.push_back(e.step);
  return out;
}

std::string verify_error(const std::string& dir) {
  try {
    verify_checkpoint(dir);
  } catch (const UserError& e) {
    return e.what();
  }
  FAIL("verify_checkpoint accepted " << dir);
  return "";
}

}  // namespace

TEST_CASE("checkpoint commit produces the final dir with a correct manifest", "[io]") {
  TempDir root;
  std::string dir;
  {
    CheckpointWriter w(root.str(), 100);
    CHECK(fs::is_directory(w.temp_dir()));
    CHECK(fs::path(w.temp_dir()).filename().string().rfind(".step_00000100.tmp-", 0) == 0);
    write_file_atomic(w.path("trainer_state.json"), R"({"step": 100})");
    write_file_atomic(w.path("optim/rank0.bin"), std::string(5000, '\7'));
    CHECK_THROWS_AS(w.path("../escape"), InternalError);
    CHECK_THROWS_AS(w.path("manifest.json"), InternalError);
    dir = w.commit({{"tokens_seen", 123}, {"note", "unit test"}});
  }
  CHECK(dir == (root.path() / "step_00000100").string());
  CHECK(dir_entries(root.path()) == std::vector<std::string>{"step_00000100"});
  CHECK(dir_entries(dir) == std::vector<std::string>{"manifest.json", "optim", "trainer_state.json"});

  auto m = nlohmann::json::parse(read_file(dir + "/manifest.json"));
  CHECK(m["format"] == "autonomoe-checkpoint");
  CHECK(m["version"] == 1);
  CHECK(m["step"] == 100);
  CHECK(std::regex_match(m["created"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
  CHECK(m["tokens_seen"] == 123);
  CHECK(m["note"] == "unit test");
  REQUIRE(m["files"].size() == 2);
  for (const std::string name : {"trainer_state.json", "optim/rank0.bin"}) {
    std::string content = read_file(dir + "/" + name);
    CHECK(m["files"][name]["bytes"] == content.size());
    CHECK(m["files"][name]["xxh3"] == fmt::format("{:016x}", XXH3_64bits(content.data(), content.size())));
  }
  CHECK(verify_checkpoint(dir) == m);
}

TEST_CASE("checkpoint writer destroyed without commit leaves nothing", "[io]") {
  TempDir root;
  {
    CheckpointWriter w(root.str(), 7);
    write_file_atomic(w.path("model.bin"), "partial");
  }
  CHECK(fs::is_empty(root.path()));
  CHECK(list_checkpoints(root.str()).empty());
  CHECK_FALSE(latest_checkpoint(root.str()).has_value());
  CHECK_THROWS_AS(CheckpointWriter(root.str(), -1), UserError);
}

TEST_CASE("verify_checkpoint reports corrupt and truncated and incomplete checkpoints", "[io]") {
  TempDir root;
  std::string older = make_checkpoint(root.str(), 50);
  std::string dir = make_checkpoint(root.str(), 60);
  verify_checkpoint(dir);
  std::string file = dir + "/optim/rank0.bin";
  std::string original = read_file(file);

  SECTION("a flipped byte is corrupt") {
    std::string flipped = original;
    flipped[3] ^= 0x20;
    write_file_atomic(file, flipped);
    std::string msg = verify_error(dir);
    CHECK_THAT(msg, Contains(dir) && Contains("corrupt") && Contains("optim/rank0.bin"));
    CHECK_THAT(msg, Contains("HINT: use an older checkpoint") && Contains(older));
  }
  SECTION("a shorter file is truncated") {
    fs::resize_file(file, original.size() - 1);
    CHECK_THAT(verify_error(dir), Contains("truncated") && Contains("optim/rank0.bin"));
  }
  SECTION("a longer file is corrupt") {
    write_file_atomic(file, original + "!");
    CHECK_THAT(verify_error(dir), Contains("corrupt") && Contains("optim/rank0.bin"));
  }
  SECTION("a listed file that is missing is incomplete") {
    fs::remove(dir + "/model.bin");
    CHECK_THAT(verify_error(dir), Contains("incomplete") && Contains("model.bin"));
  }
  SECTION("no manifest is incomplete and the dir is no longer listed") {
    fs::remove(dir + "/manifest.json");
    CHECK_THAT(verify_error(dir), Contains(dir) && Contains("incomplete") && Contains(older));
    CHECK_THAT(verify_error(dir + "/"), Contains("incomplete") && Contains(older));
    CHECK(steps(root.str()) == std::vector<int64_t>{50});
    CHECK(latest_checkpoint(root.str())->path == older);
  }
  SECTION("a manifest that is not JSON is corrupt") {
    write_file_atomic(dir + "/manifest.json", "{\"format\": ");
    CHECK_THAT(verify_error(dir), Contains("corrupt") && Contains("manifest.json"));
  }
  SECTION("the only checkpoint gets a hint that there is no other") {
    fs::remove_all(older);
    fs::remove(dir + "/manifest.json");
    CHECK_THAT(verify_error(dir), Contains("no other checkpoint"));
  }
  CHECK_THROWS_WITH(verify_checkpoint(root.str() + "/step_00000999"), Contains("does not exist"));
}

TEST_CASE("list_checkpoints and latest_checkpoint see only complete step dirs", "[io]") {
  TempDir root;
  CHECK(list_checkpoints(root.str() + "/not_created_yet").empty());
  make_checkpoint(root.str(), 300);
  make_checkpoint(root.str(), 5);
  make_checkpoint(root.str(), 20);
  fs::create_directories(root.path() / "step_00000400");             // no manifest
  fs::create_directories(root.path() / ".step_00000500.tmp-12345");  // a crashed write
  write_file_atomic((root.path() / ".step_00000500.tmp-12345/manifest.json").string(), "{}");
  fs::create_directories(root.path() / "step_600");  // not our naming
  write_file_atomic((root.path() / "step_600/manifest.json").string(), "{}");
  write_file_atomic((root.path() / "notes.txt").string(), "hello");
  CHECK(steps(root.str()) == std::vector<int64_t>{5, 20, 300});
  auto latest = latest_checkpoint(root.str());
  REQUIRE(latest);
  CHECK(latest->step == 300);
  CHECK(latest->path == (root.path() / "step_00000300").string());
}

TEST_CASE("prune_checkpoints keeps the last N and a protected step", "[io]") {
  TempDir root;
  for (int64_t s = 1; s <= 6; ++s) make_checkpoint(root.str(), s * 10);
  prune_checkpoints(root.str(), 0);  // keep all
  CHECK(steps(root.str()).size() == 6);
  prune_checkpoints(root.str(), 2, 10);
  CHECK(steps(root.str()) == std::vector<int64_t>{10, 50, 60});
  prune_checkpoints(root.str(), 1);
  CHECK(steps(root.str()) == std::vector<int64_t>{60});
  CHECK(dir_entries(root.path()) == std::vector<std::string>{"step_00000060"});  // nothing hidden left
}

TEST_CASE("remove_stale_temp_dirs removes leftovers and restores an interrupted replace", "[io]") {
  TempDir root;
  make_checkpoint(root.str(), 1);
  fs::create_directories(root.path() / ".step_00000007.tmp-99999/optim");
  write_file_atomic((root.path() / ".step_00000007.tmp-99999/optim/x").string(), "x");
  fs::create_directories(root.path() / ".step_00000008.del-4242");
  // A replacing commit that crashed after moving step 9 aside but before renaming the new one in.
  std::string nine = make_checkpoint(root.str(), 9);
  fs::rename(nine, root.path() / ".step_00000009.old-777");
  CHECK(steps(root.str()) == std::vector<int64_t>{1});

  CHECK(remove_stale_temp_dirs(root.str()) == 2);
  CHECK(dir_entries(root.path()) == std::vector<std::string>{"step_00000001", "step_00000009"});
  verify_checkpoint(nine);
  CHECK(remove_stale_temp_dirs(root.str()) == 0);
  CHECK(remove_stale_temp_dirs(root.str() + "/missing") == 0);
}

TEST_CASE("committing a step that already exists replaces it", "[io]") {
  TempDir root;
  std::string first = make_checkpoint(root.str(), 10, "first");
  std::string second = make_checkpoint(root.str(), 10, "second");
  CHECK(first == second);
  CHECK(read_file(second + "/model.bin").rfind("second", 0) == 0);
  auto m = verify_checkpoint(second);
  CHECK(m["files"]["model.bin"]["bytes"] == 6 + 1000);
  CHECK(dir_entries(root.path()) == std::vector<std::string>{"step_00000010"});
}
