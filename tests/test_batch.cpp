// Batch semantics (train/batch.h): the global batch a config states is the batch of every
// layout; the accumulation is derived from it, and a layout it does not divide is refused with
// the three values. Resuming with another schedule is refused (train/resume_check.h).
#include <catch2/catch.hpp>

#include "config/config.h"
#include "core/error.h"
#include "support/resolved_key.h"
#include "support/temp_dir.h"
#include "train/batch.h"
#include "train/resume_check.h"

#include <fstream>
#include <string>
#include <vector>

using namespace am;

namespace {

std::string fixture(const std::string& rel) { return std::string(AM_SOURCE_DIR) + "/tests/data/configs/" + rel; }

// The message of the UserError `f` throws ("" if it throws none).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

using test::resolved;

}  // namespace

TEST_CASE("derive_batch: accumulation = global / (micro x data-parallel size)", "[batch]") {
  const Config cfg = load_config(fixture("base.yaml"), {"train.global_batch=24", "train.micro_batch_size=2"});
  for (const auto& [dp, accum] : std::vector<std::pair<int, int>>{{1, 12}, {2, 6}, {3, 4}, {4, 3}, {6, 2}, {12, 1}}) {
    INFO("dp " << dp);
    const BatchPlan p = derive_batch(cfg, dp, "test");
    CHECK(p.global == 24);
    CHECK(p.micro == 2);
    CHECK(p.dp == dp);
    CHECK(p.accum == accum);
    CHECK(int64_t{p.micro} * p.accum * p.dp == p.global);
  }
  CHECK(valid_data_parallel_sizes(cfg.train) == std::vector<int>{1, 2, 3, 4, 6, 12});
  CHECK(valid_data_parallel_sizes(cfg.train, 4) == std::vector<int>{1, 2, 3, 4});
  CHECK_THAT(derive_batch(cfg, 4, "4 processes").describe(),
             Catch::Contains("global batch 24 sequences = micro-batch 2 x accumulation 3 x data-parallel size 4 "
                             "(4 processes)"));
}

TEST_CASE("derive_batch: a global batch that does not divide names all three values", "[batch]") {
  const Config cfg = load_config(fixture("base.yaml"), {"train.global_batch=24", "train.micro_batch_size=4"});
  const std::string msg = error_of([&] { derive_batch(cfg, 4, "4 processes, mpi communication"); });
  CHECK_THAT(msg, Catch::Contains("train.global_batch = 24 (--set)"));
  CHECK_THAT(msg, Catch::Contains("train.micro_batch_size = 4 (--set)"));
  CHECK_THAT(msg, Catch::Contains("data-parallel size 4 (4 processes, mpi communication"));
  CHECK_THAT(msg, Catch::Contains("= 16"));
  CHECK_THAT(msg, Catch::Contains("divides 24 / 4 = 6 (1, 2, 3, 6)"));
  CHECK_THAT(msg, Catch::Contains("micro_batch_size to a divisor of 24 / 4 = 6"));
  CHECK(error_of([&] { derive_batch(cfg, 5, "5 processes"); }).find("a divisor of") == std::string::npos);
  CHECK(error_of([&] { derive_batch(cfg, 3, "3 processes"); }).empty());
}

TEST_CASE("derive_batch: grad_accum is accepted only when it is the derived value", "[batch]") {
  const Config ok =
      load_config(fixture("base.yaml"), {"train.global_batch=16", "train.micro_batch_size=2", "train.grad_accum=4"});
  CHECK(derive_batch(ok, 2, "2 processes").accum == 4);
  const std::string msg = error_of([&] { derive_batch(ok, 1, "one process"); });
  CHECK_THAT(msg, Catch::Contains("train.grad_accum = 4 (--set) does not match the accumulation derived from "
                                  "train.global_batch = 16 (--set) / (train.micro_batch_size = 2 (--set) x "
                                  "data-parallel size 1 (one process)) = 8"));
  CHECK_THAT(msg, Catch::Contains("leave train.grad_accum out"));
}

TEST_CASE("derive_batch: without train.global_batch, one process only", "[batch]") {
  // Not stated: micro_batch_size x grad_accum, the batch of one process (configs before global_batch).
  const Config cfg = load_config(fixture("base.yaml"), {"train.global_batch=0", "train.grad_accum=3"});
  const BatchPlan one = derive_batch(cfg, 1, "one process");
  CHECK(one.global == 12);
  CHECK(one.accum == 3);
  CHECK_FALSE(one.stated);
  const std::string msg = error_of([&] { derive_batch(cfg, 2, "2 processes"); });
  CHECK_THAT(msg, Catch::Contains("train.global_batch is not set, and this run has data-parallel size 2"));
  CHECK_THAT(msg, Catch::Contains("--set train.global_batch=12"));
  CHECK_THAT(msg, Catch::Contains("24 = 12 x 2 is what 2 processes trained before"));
}

TEST_CASE("config validation: global_batch is a multiple of micro_batch_size (x grad_accum)", "[batch][config]") {
  const std::string a = error_of([] { load_config(fixture("base.yaml"), {"train.global_batch=6"}); });
  CHECK_THAT(a, Catch::Contains("train.global_batch = 6 (--set) must be a multiple of train.micro_batch_size = 4"));
  const std::string b = error_of([] {
    load_config(fixture("base.yaml"), {"train.global_batch=12", "train.micro_batch_size=2", "train.grad_accum=4"});
  });
  CHECK_THAT(b, Catch::Contains("must be a multiple of train.micro_batch_size = 2"));
  CHECK_THAT(b, Catch::Contains("train.grad_accum = 4"));
  CHECK(error_of([] {
          load_config(fixture("base.yaml"), {"train.global_batch=12", "train.micro_batch_size=2"});
        }).empty());
}

TEST_CASE("set_batch: the run's config states the global batch, grad_accum derived", "[batch]") {
  Config cfg = load_config(fixture("base.yaml"), {"train.global_batch=0", "train.grad_accum=2"});
  set_batch(cfg, derive_batch(cfg, 1, "one process"));
  CHECK(cfg.train.global_batch == 8);
  CHECK(cfg.train.grad_accum == 0);
  CHECK(resolved(cfg, "train.global_batch").value == "8");
  CHECK(resolved(cfg, "train.grad_accum").value == "0");
  // config.resolved.yaml reads back with the same batch, now valid on 2 ranks of micro-batch 4
  test::TempDir dir("batch");
  const std::string path = dir / "config.resolved.yaml";
  std::ofstream(path) << config_to_yaml(cfg);
  const Config back = load_config(path);
  CHECK(back.train.global_batch == 8);
  CHECK(derive_batch(back, 2, "2 processes").accum == 1);
}

TEST_CASE("resume: train.* changes are listed and refused unless allowed", "[batch][resume]") {
  const Config ckpt = load_config(fixture("base.yaml"));
  // The micro-batch (and with it grad_accum) follows the layout: free to change.
  CHECK(schedule_changes(ckpt, load_config(fixture("base.yaml"), {"train.micro_batch_size=2"})).empty());
  const Config now = load_config(fixture("base.yaml"), {"train.max_steps=200", "train.warmup_steps=20",
                                                        "train.min_lr=1e-4", "train.global_batch=8"});
  const std::vector<std::string> diffs = schedule_changes(ckpt, now);
  REQUIRE(diffs.size() == 4);
  CHECK(diffs[0] == "train.max_steps: checkpoint 100, config 200");
  CHECK_THAT(diffs[1], Catch::StartsWith("train.min_lr: checkpoint "));
  CHECK(diffs[2] == "train.warmup_steps: checkpoint 10, config 20");
  CHECK(diffs[3] == "train.global_batch: checkpoint 4, config 8");
  const std::string msg = error_of([&] { check_resume_compatible(ckpt, now, "ck", false, false); });
  CHECK_THAT(msg, Catch::Contains("cannot resume from ck: the training schedule differs"));
  for (const std::string& d : diffs) CHECK_THAT(msg, Catch::Contains(d));
  CHECK_THAT(msg, Catch::Contains("--allow-schedule-change"));
  CHECK_NOTHROW(check_resume_compatible(ckpt, now, "ck", true, false));
  // A checkpoint written before train.global_batch: micro_batch_size x grad_accum.
  const Config old = load_config(fixture("base.yaml"), {"train.global_batch=0", "train.grad_accum=2"});
  CHECK(schedule_changes(old, load_config(fixture("base.yaml"), {"train.global_batch=8"})).empty());
  // Model changes are refused even when schedule changes are allowed.
  const std::string model = error_of([&] {
    check_resume_compatible(ckpt, load_config(fixture("base.yaml"), {"model.d_model=32"}), "ck", true, false);
  });
  CHECK_THAT(model, Catch::Contains("the model differs from the config"));
}
