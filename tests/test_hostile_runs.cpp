// Hostile conditions around a run (issue 10 points 7, 8 and 9): a full disk under metrics.jsonl,
// a signal before training has started, a resume past train.max_steps, and shards changed under a
// running job (checked at each epoch; a truncated mapping that is read ends the process with a
// message naming the shard instead of a silent SIGBUS).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <csignal>
#include <filesystem>

#include "data/loader.h"
#include "data/shard.h"
#include "io/checkpoint_dir.h"
#include "io/safetensors.h"
#include "support/synthetic_run.h"
#include "train/metrics.h"

using namespace am;
namespace fs = std::filesystem;

namespace {

std::vector<int32_t> ramp(int n, int vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = i % vocab;
  return t;
}

// Runs `body` in a child process; returns its exit status and what it wrote to stderr.
template <typename F>
std::pair<int, std::string> in_child(F body) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    try {
      body();
    } catch (...) {}
    ::_exit(99);  // body returned: the expected signal never came
  }
  ::close(fds[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {status, err};
}

}  // namespace

TEST_CASE("metrics.jsonl on a full disk fails at the first record, naming the file", "[train][hostile]") {
  REQUIRE(fs::exists("/dev/full"));  // Linux
  test::TempDir dir("full");
  fs::create_symlink("/dev/full", dir / "metrics.jsonl");
  MetricsLog log(dir / "metrics.jsonl", -1);
  CHECK_THROWS_WITH(log.write({{"step", 1}}), Catch::Contains("cannot write '" + (dir / "metrics.jsonl") + "'") &&
                                                  Catch::Contains("No space left on device"));
}

TEST_CASE("metrics.jsonl as a FIFO or a directory is refused without blocking", "[train][hostile]") {
  test::TempDir dir("metrics-kind");
  REQUIRE(::mkfifo((dir / "fifo.jsonl").c_str(), 0600) == 0);
  CHECK_THROWS_WITH(MetricsLog(dir / "fifo.jsonl", -1),
                    Catch::Contains("metrics file '" + (dir / "fifo.jsonl") + "' is a FIFO"));
  CHECK_THROWS_WITH(MetricsLog(dir / "fifo.jsonl", 5), Catch::Contains("is a FIFO"));
  fs::create_directory(dir / "dir.jsonl");
  CHECK_THROWS_WITH(MetricsLog(dir / "dir.jsonl", -1), Catch::Contains("is a directory"));
  fs::create_symlink("/dev/null", dir / "null.jsonl");  // discarding metrics is allowed
  MetricsLog null_log(dir / "null.jsonl", 3);
  CHECK_NOTHROW(null_log.write({{"step", 4}}));
}

TEST_CASE("a shard replaced or truncated since it was opened is refused at the next epoch", "[data][hostile]") {
  test::TempDir dir("changed");
  const std::string shard = dir / "s_000.bin";
  write_shard(shard, ramp(200, 32), 32);
  DataLoader loader(dir / "s_*.bin", 2, 8, false, 0, 32);  // 24 windows per epoch
  std::vector<int32_t> in(16), tg(16);
  loader.next(in.data(), tg.data());
  write_shard(shard, ramp(200, 16), 32);                           // the same size, another file
  for (int i = 1; i < 12; ++i) loader.next(in.data(), tg.data());  // the rest of epoch 0 (the old map)
  CHECK_THROWS_WITH(loader.next(in.data(), tg.data()),
                    Catch::Contains(shard + ": token shard was modified, truncated or replaced"));
  // A validation loader starts each evaluation with reset(), which checks again.
  DataLoader val(dir / "s_*.bin", 2, 8, false, 0, 32);
  val.next(in.data(), tg.data());
  fs::resize_file(shard, fs::file_size(shard) - 2);
  val.reset();
  CHECK_THROWS_WITH(val.next(in.data(), tg.data()), Catch::Contains(shard + ": token shard was modified"));
}

TEST_CASE("reading a truncated mapped shard ends the process with a message naming it", "[data][hostile]") {
  test::TempDir dir("sigbus");
  const std::string shard = dir / "big_000.bin";
  write_shard(shard, ramp(1 << 16, 32), 32);  // 128 KiB of tokens: many pages
  const auto [status, err] = in_child([&] {
    ShardReader r(shard);
    fs::resize_file(shard, 4096);
    std::vector<int32_t> out(16);
    r.read(r.n_tokens() - 16, 16, out.data());  // past the new end of the file: SIGBUS
  });
  INFO(err);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK_THAT(err,
             Catch::Contains("token shard '" + shard + "' was truncated or replaced") && Catch::Contains("SIGBUS"));
}

TEST_CASE("reading a truncated mapped safetensors file ends the process with a message naming it", "[io][hostile]") {
  test::TempDir dir("sigbus-st");
  const std::string path = dir / "model.safetensors";
  const std::vector<float> w(1 << 16, 1.0f);  // 256 KiB
  write_safetensors(path, {StEntry{"w", DType::F32, {1 << 16}, w.data()}});
  const auto [status, err] = in_child([&] {
    SafetensorsFile f(path);
    fs::resize_file(path, 4096);
    std::vector<float> out(w.size());
    f.copy_to("w", out.data(), DType::F32, {1 << 16});  // pages past the new end: SIGBUS
  });
  INFO(err);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK_THAT(err, Catch::Contains("safetensors file '" + path + "' was truncated or replaced"));
}

TEST_CASE("a signal during the set-up stops the run before its first step, writing nothing", "[train][hostile]") {
  test::TempDir dir("setup-signal");
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  for (const char* phase : {"data", "model"}) {
    static std::string at;
    at = phase;
    TrainOptions o;  // handle_signals: true, as the CLI runs
    o.on_setup_phase = [](const char* p) {
      if (at == p) std::raise(SIGINT);
    };
    const TrainSummary s = train(load_config(yaml, {fmt::format("run.name=sig_{}", phase)}), o);
    CHECK(s.interrupted);
    CHECK(s.step_losses.empty());
    CHECK(s.end_step == 0);
    CHECK_FALSE(fs::exists(s.run_dir));
  }
}

TEST_CASE("a signal during the last step completes the run: final eval, checkpoint, summary.json", "[train][hostile]") {
  test::TempDir dir("last-step-signal");
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  TrainOptions o;  // handle_signals: true, as the CLI runs
  o.on_step = [](int64_t step) {
    if (step == 3) std::raise(SIGTERM);
  };
  const TrainSummary s = train(load_config(yaml, {"run.name=last", "train.max_steps=3"}), o);
  CHECK_FALSE(s.interrupted);
  CHECK(s.stop_requested);  // a sweep stops after this point
  CHECK(s.end_step == 3);
  CHECK(std::isfinite(s.final_val_loss));
  CHECK(list_checkpoints(s.run_dir + "/checkpoints").back().step == 3);
  REQUIRE(fs::exists(s.run_dir + "/summary.json"));
  // One step earlier the same signal stops the run, interrupted, without a summary.
  o.on_step = [](int64_t step) {
    if (step == 2) std::raise(SIGTERM);
  };
  const TrainSummary t = train(load_config(yaml, {"run.name=early", "train.max_steps=3"}), o);
  CHECK(t.interrupted);
  CHECK_FALSE(t.stop_requested);
  CHECK(t.end_step == 2);
  CHECK_FALSE(fs::exists(t.run_dir + "/summary.json"));
}

TEST_CASE("resuming a run that is already complete trains nothing and says so", "[train][hostile]") {
  test::TempDir dir("complete");
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  const TrainSummary a = train(load_config(yaml, {"run.name=c", "train.max_steps=3"}), test::quiet_train());
  TrainOptions o = test::quiet_train();
  o.resume = a.last_checkpoint;
  const TrainSummary b = train(load_config(yaml, {"run.name=c", "train.max_steps=3"}), o);
  CHECK(b.already_complete);
  CHECK(b.step_losses.empty());
  CHECK(b.end_step == 3);
  CHECK(list_checkpoints(a.run_dir + "/checkpoints").back().step == 3);
}
