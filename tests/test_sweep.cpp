// Sweeps: reading sweep files (every validation error), expanding points (grid order, appended
// points, ids, collisions, duplicates), and whole sweeps on synthetic data in-process (results
// files, skipping finished points, resuming and re-running, a failing point, SIGINT).
#include "io/atomic_file.h"
#include "io/checkpoint_dir.h"
#include "support/synthetic_run.h"
#include "sweep/results.h"
#include "sweep/runner.h"
#include "test_data_util.h"
#include "train/trainer.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace am;
namespace fs = std::filesystem;

namespace {

// A base config (synthetic data, the small MoE of the training tests) and a sweep file beside
// it whose body is `sweep_yaml` (with base: run.yaml prepended); returns the sweep file's path.
std::string make_sweep(const test::TempDir& dir, const std::string& sweep_yaml,
                       const std::string& file = "sweep.yaml") {
  if (!fs::exists(dir / "run.yaml")) test::make_synthetic_run(dir, test::kSmallMoe);
  test::write_text(dir / file, "base: run.yaml\n" + sweep_yaml);
  return dir / file;
}

std::vector<std::string> ids_of(const std::vector<SweepPoint>& points) {
  std::vector<std::string> ids;
  for (const SweepPoint& p : points) ids.push_back(p.id);
  return ids;
}

std::vector<std::string> csv_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  return lines;
}

nlohmann::json summary_of(const Config& cfg) {
  return nlohmann::json::parse(read_file(run_dir_of(cfg) + "/summary.json"));
}

SweepOptions quiet() {
  SweepOptions o;
  o.handle_signals = false;
  return o;
}

// The 2x2 sweep of the end-to-end tests: 4 steps per point, checkpoints at 2 and 4.
const char* kTwoByTwo = R"(name: e2e
set:
  train.max_steps: 4
  checkpoint.every: 2
grid:
  model.moe.aux.load_balance: [0, 0.01]
  model.moe.d_ffn: [16, 24]
)";

}  // namespace

TEST_CASE("grid points come first in odometer order, then the explicit points", "[sweep]") {
  test::TempDir dir("sweep-expand");
  const std::string path = make_sweep(dir, R"(name: lrs
set: {train.max_steps: 3}
grid:
  model.moe.aux.load_balance: [0, 0.01]
  train:
    lr: [1.0e-3, 3.0e-3]
points:
  - {train.lr: 1.0e-2, data.seq_len: 8}
)");
  const SweepPlan plan = plan_sweep(path, {"eval.batches=1"});
  CHECK(ids_of(plan.points) == std::vector<std::string>{"load_balance=0,lr=0.001", "load_balance=0,lr=0.003",
                                                        "load_balance=0.01,lr=0.001", "load_balance=0.01,lr=0.003",
                                                        "lr=0.01,seq_len=8"});
  CHECK(plan.varying_keys == std::vector<std::string>{"model.moe.aux.load_balance", "train.lr", "data.seq_len"});
  // set:, then --set, then the point's own values, then run.name
  CHECK(plan.points[1].overrides == std::vector<std::string>{"train.max_steps=3", "eval.batches=1",
                                                             "model.moe.aux.load_balance=0", "train.lr=3.0e-3",
                                                             "run.name=lrs/load_balance=0,lr=0.003"});
  REQUIRE(plan.configs.size() == 5);
  CHECK(plan.configs[2].train.lr == 1.0e-3);
  CHECK(plan.configs[2].model.moe.aux.load_balance == 0.01);
  CHECK(plan.configs[4].data.seq_len == 8);
  CHECK(plan.configs[4].model.moe.aux.load_balance == 0.01);  // the base's value
  for (const Config& c : plan.configs) {
    CHECK(c.train.max_steps == 3);
    CHECK(c.eval.batches == 1);
  }
  // run.name may hold a '/': every point's run directory is <out_dir>/<sweep>/<id>
  const fs::path out = dir / "runs";
  CHECK(fs::path(run_dir_of(plan.configs[4])) == out / "lrs" / "lr=0.01,seq_len=8");
  CHECK(fs::path(plan.dir) == out / "lrs");
}

TEST_CASE("point ids: short key names, canonical values, safe file names", "[sweep]") {
  CHECK(short_key_names({"model.moe.d_ffn", "train.lr"}) == std::vector<std::string>{"d_ffn", "lr"});
  CHECK(short_key_names({"eval.every", "log.every", "train.lr"}) ==
        std::vector<std::string>{"eval.every", "log.every", "lr"});
  const std::vector<std::string> keys = {"train.lr", "data.val"};
  const std::vector<std::string> names = short_key_names(keys);
  CHECK(point_id({{"data.val", "x/y z*.bin", "x/y z*.bin", ""}, {"train.lr", "3e-3", "0.003", ""}}, keys, names) ==
        "val=x_y_z_.bin,lr=0.003");

  test::TempDir dir("sweep-ids");
  // the name defaults to the file's stem; values print in their shortest exact form
  const std::string path =
      make_sweep(dir, "grid:\n  train.lr: [3.0e-3, 1e-2]\n  model.tie_embeddings: [false, true]\n", "my_sweep.yaml");
  const SweepFile sf = read_sweep_file(path);
  CHECK(sf.name == "my_sweep");
  CHECK(ids_of(expand_points(sf, {})) ==
        std::vector<std::string>{"lr=0.003,tie_embeddings=false", "lr=0.003,tie_embeddings=true",
                                 "lr=0.01,tie_embeddings=false", "lr=0.01,tie_embeddings=true"});
}

TEST_CASE("colliding ids and duplicate points are errors", "[sweep]") {
  test::TempDir dir("sweep-dupes");
  // different values that sanitise to the same file name
  std::string err = test::user_error(
      [&] { plan_sweep(make_sweep(dir, "points:\n  - {data.val: 'a/b'}\n  - {data.val: 'a b'}\n"), {}); });
  CHECK_THAT(err, Catch::Contains("get the same id 'val=a_b'"));
  CHECK_THAT(err, Catch::Contains("sweep.yaml:3"));
  // the same values twice (written differently, in another key order)
  err = test::user_error([&] {
    plan_sweep(make_sweep(dir,
                          "points:\n  - {train.lr: 0.01, train.warmup_steps: 1}\n"
                          "  - {train.warmup_steps: 1, train.lr: 1.0e-2}\n"),
               {});
  });
  CHECK_THAT(err, Catch::Contains("point 2 (") && Catch::Contains("sets the same values as point 1"));
  // a grid point and an explicit point with the same values
  err = test::user_error(
      [&] { plan_sweep(make_sweep(dir, "grid: {train.lr: [0.02, 0.03]}\npoints: [{train.lr: 0.03}]\n"), {}); });
  CHECK_THAT(err, Catch::Contains("point 3 (") && Catch::Contains("sets the same values as point 2 (grid)"));
  // different overrides that resolve to the same config (0.01 is the base's train.lr)
  err = test::user_error(
      [&] { plan_sweep(make_sweep(dir, "points:\n  - {train.lr: 0.01}\n  - {train.warmup_steps: 2}\n"), {}); });
  CHECK_THAT(err, Catch::Contains("points lr=0.01 and warmup_steps=2 resolve to the same config"));
}

TEST_CASE("sweep file errors name the file, line, key and what is valid", "[sweep]") {
  test::TempDir dir("sweep-errors");
  auto error_of = [&](const std::string& body, const std::vector<std::string>& sets = {}) {
    return test::user_error([&] { plan_sweep(make_sweep(dir, body), sets); });
  };
  // several problems at once, all reported
  std::string err = error_of("gird: {train.lr: [1]}\nset: {train.lrr: 1}\npoints: []\n");
  CHECK_THAT(err, Catch::Contains("3 problems"));
  CHECK_THAT(err, Catch::Contains("sweep.yaml:2: unknown top-level key 'gird'; did you mean grid?"));
  CHECK_THAT(err, Catch::Contains("sweep.yaml:3: set: 'train.lrr' is not a config key; did you mean train.lr?"));
  CHECK_THAT(err, Catch::Contains("sweep.yaml:4: points: expected a non-empty list"));

  CHECK_THAT(error_of("name: x\n"), Catch::Contains("nothing to sweep"));
  CHECK_THAT(error_of("grid:\n  train.lr: []\n"),
             Catch::Contains("sweep.yaml:3: grid: train.lr: expected a non-empty list of values") &&
                 Catch::Contains("got an empty list"));
  CHECK_THAT(error_of("grid:\n  train.lr: 0.1\n"), Catch::Contains("got a scalar"));
  CHECK_THAT(error_of("grid:\n  train.max_steps: [2, many]\n"),
             Catch::Contains("sweep.yaml:3: grid: train.max_steps: expected an integer, got 'many'"));
  CHECK_THAT(error_of("grid:\n  train.max_steps: [2, 2]\n"), Catch::Contains("the value 2 is listed twice"));
  CHECK_THAT(error_of("grid:\n  train.lr: [-1]\n"), Catch::Contains("out of range"));
  CHECK_THAT(error_of("points:\n  - {}\n"), Catch::Contains("sweep.yaml:3: points: each point is a non-empty map"));
  CHECK_THAT(error_of("grid:\n  run.name: [a, b]\n"), Catch::Contains("run.name is set by the sweep"));
  CHECK_THAT(error_of("grid:\n  run.out_dir: [a, b]\n"), Catch::Contains("run.out_dir cannot vary"));
  CHECK_THAT(error_of("grid:\n  model.moe: [1, 2]\n"), Catch::Contains("model.moe is a config section, not a key"));
  CHECK_THAT(error_of("set: {train.lr: 0.1}\ngrid: {train.lr: [0.2, 0.3]}\n"),
             Catch::Contains("train.lr is both under set: and grid:"));
  CHECK_THAT(error_of("name: a/b\ngrid: {train.lr: [0.2, 0.3]}\n"), Catch::Contains("name: expected a name"));
  // a --set may not fix a key the sweep varies
  CHECK_THAT(error_of("grid: {train.lr: [0.2, 0.3]}\n", {"train.lr=0.5"}),
             Catch::Contains("--set train.lr=0.5: train.lr is varied by the sweep"));
  CHECK_THAT(error_of("grid: {train.lr: [0.2, 0.3]}\n", {"train.lrr=0.5"}),
             Catch::Contains("'train.lrr' is not a config key; did you mean train.lr?"));

  // a missing base file
  test::write_text(dir / "nobase.yaml", "base: nope/missing.yaml\ngrid: {train.lr: [0.2, 0.3]}\n");
  err = test::user_error([&] { read_sweep_file(dir / "nobase.yaml"); });
  CHECK_THAT(err, Catch::Contains("nobase.yaml:1: base: config file '") &&
                      Catch::Contains("nope/missing.yaml' not found") &&
                      Catch::Contains("relative to the sweep file's directory"));
  CHECK_THAT(test::user_error([&] { read_sweep_file(dir / "absent.yaml"); }),
             Catch::Contains("sweep file '") && Catch::Contains("absent.yaml' not found"));
  test::write_text(dir / "bad name.yaml", "base: run.yaml\ngrid: {train.lr: [0.2, 0.3]}\n");
  CHECK_THAT(test::user_error([&] { read_sweep_file(dir / "bad name.yaml"); }),
             Catch::Contains("defaults to the file's stem 'bad name'"));
  test::write_text(dir / "syntax.yaml", "base: run.yaml\ngrid: {train.lr: [0.2, 0.3}\n");
  CHECK_THAT(test::user_error([&] { read_sweep_file(dir / "syntax.yaml"); }), Catch::Contains("YAML syntax error"));
}

TEST_CASE("every invalid point is reported and nothing runs", "[sweep]") {
  test::TempDir dir("sweep-invalid");
  // d_model 16 is divisible by 2 and 4 heads but not by 3 or 5
  const std::string path = make_sweep(dir, "grid:\n  model.n_heads: [2, 3, 4, 5]\n");
  const std::string err = test::user_error([&] { plan_sweep(path, {}); });
  CHECK_THAT(err, Catch::Contains("2 of 4 points are invalid; nothing was run"));
  CHECK_THAT(err, Catch::Contains("point n_heads=3: invalid config") &&
                      Catch::Contains("must be divisible by model.n_heads = 3"));
  CHECK_THAT(err, Catch::Contains("point n_heads=5: invalid config"));
  CHECK_THAT(err, !Catch::Contains("n_heads=2:") && !Catch::Contains("n_heads=4:"));
  CHECK_FALSE(fs::exists(dir / "runs"));
  // a problem every point shares is reported once
  const std::string shared = test::user_error(
      [&] { plan_sweep(make_sweep(dir, "grid: {train.lr: [0.02, 0.03]}\n", "lrs.yaml"), {"model.d_model=15"}); });
  CHECK_THAT(shared, Catch::Contains("2 of 2 points are invalid") && Catch::Contains("every point: invalid config") &&
                         Catch::Contains("must be divisible by model.n_heads = 2"));
}

TEST_CASE("a sweep runs every point, then skips, resumes and re-runs as its run dirs say", "[sweep][train]") {
  test::TempDir dir("sweep-e2e");
  const std::string path = make_sweep(dir, kTwoByTwo);
  const SweepPlan plan = plan_sweep(path, {});
  REQUIRE(plan.points.size() == 4);

  // 1. a fresh sweep: every point trains and the results hold one row per point
  const SweepOutcome first = run_sweep(plan, quiet());
  CHECK_FALSE(first.interrupted);
  std::vector<nlohmann::json> summaries;
  for (size_t i = 0; i < 4; ++i) {
    CHECK(first.results[i].status == PointStatus::Done);
    summaries.push_back(summary_of(plan.configs[i]));
    CHECK(summaries[i]["completed"] == true);
    CHECK(summaries[i]["steps"] == 4);
  }
  CHECK(first.csv_path == (fs::path(plan.dir) / "results.csv").string());
  std::vector<std::string> rows = csv_lines(first.csv_path);
  REQUIRE(rows.size() == 5);
  CHECK(rows[0] ==
        "point,model.moe.aux.load_balance,model.moe.d_ffn,final_train_loss,final_val_loss,"
        "tokens_per_s,experts_per_token,ent_load,params_total,params_active,status,run_dir");
  for (size_t i = 0; i < 4; ++i) {
    // the row starts with the (quoted: it holds a comma) id and reads the run's summary.json
    CHECK(rows[i + 1].rfind("\"" + plan.points[i].id + "\",", 0) == 0);
    CHECK_THAT(rows[i + 1], Catch::Contains(fmt::format(",{},", summaries[i]["final_train_loss"].get<double>())));
    CHECK_THAT(rows[i + 1], Catch::Contains(fmt::format(",{},{},done,", summaries[i]["params_total"].get<int64_t>(),
                                                        summaries[i]["params_active"].get<int64_t>())));
  }
  const std::string md = read_file(first.md_path);
  CHECK_THAT(md, Catch::Contains("| load_balance=0.01,d_ffn=24 | 0.01"));
  CHECK(std::count(md.begin(), md.end(), '\n') >= 8);  // title, blank, text, blank, header, rule, 4 rows

  // 2. again: every point is skipped, nothing is rewritten
  const auto metrics_before = test::read_bytes(run_dir_of(plan.configs[0]) + "/metrics.jsonl");
  const SweepOutcome second = run_sweep(plan, quiet());
  for (size_t i = 0; i < 4; ++i) CHECK(second.results[i].status == PointStatus::SkippedDone);
  CHECK(test::read_bytes(run_dir_of(plan.configs[0]) + "/metrics.jsonl") == metrics_before);
  CHECK(csv_lines(second.csv_path).size() == 5);
  CHECK_THAT(read_file(second.md_path), Catch::Contains("skipped-done"));
  // a finished point stays skipped when the config changed since, but the sweep says what changed
  const SweepPlan changed = plan_sweep(path, {"eval.batches=1"});
  const PointState cs = inspect_point(changed.configs[0]);
  CHECK(cs.action == PointState::Action::Skip);
  CHECK(cs.changed == std::vector<std::string>{"eval.batches: 2 -> 1"});
  CHECK(inspect_point(plan.configs[0]).changed.empty());

  // 3. point 2 lost its summary and final checkpoint: it resumes from step 2, bit-exactly
  const std::string run1 = run_dir_of(plan.configs[1]);
  fs::remove(run1 + "/summary.json");
  fs::remove_all(run1 + "/checkpoints/" + checkpoint_dir_name(4));
  const PointState st = inspect_point(plan.configs[1]);
  CHECK(st.action == PointState::Action::Resume);
  CHECK(st.checkpoint_step == 2);
  const SweepOutcome third = run_sweep(plan, quiet());
  for (size_t i = 0; i < 4; ++i) {
    CHECK(third.results[i].status == (i == 1 ? PointStatus::Done : PointStatus::SkippedDone));
  }
  CHECK(summary_of(plan.configs[1])["final_train_loss"] == summaries[1]["final_train_loss"]);
  CHECK(summary_of(plan.configs[1])["final_val_loss"] == summaries[1]["final_val_loss"]);

  // 4. point 3 lost only its summary: its newest checkpoint is the last step, so it is run again
  //    from scratch (same seed: same losses) after its old run dir is moved aside
  const std::string run2 = run_dir_of(plan.configs[2]);
  fs::remove(run2 + "/summary.json");
  CHECK(inspect_point(plan.configs[2]).action == PointState::Action::Rerun);
  const SweepOutcome fourth = run_sweep(plan, quiet());
  for (size_t i = 0; i < 4; ++i) {
    CHECK(fourth.results[i].status == (i == 2 ? PointStatus::Done : PointStatus::SkippedDone));
  }
  CHECK(fs::exists(run2 + ".stale-1/checkpoints/" + checkpoint_dir_name(4)));
  CHECK(summary_of(plan.configs[2])["final_train_loss"] == summaries[2]["final_train_loss"]);
  CHECK(summary_of(plan.configs[2])["final_val_loss"] == summaries[2]["final_val_loss"]);
}

TEST_CASE("a failing point is reported and the sweep goes on", "[sweep][train]") {
  test::TempDir dir("sweep-fail");
  // the data's vocabulary has 32 tokens: the point with 40 fails when it starts training
  const std::string path = make_sweep(dir, "set: {train.max_steps: 2}\ngrid:\n  model.vocab_size: [40, 32]\n");
  const SweepPlan plan = plan_sweep(path, {});
  const SweepOutcome out = run_sweep(plan, quiet());
  CHECK_FALSE(out.interrupted);
  CHECK(out.results[0].status == PointStatus::Failed);
  CHECK_THAT(out.results[0].error, Catch::Contains("model.vocab_size is 40"));
  CHECK(out.results[1].status == PointStatus::Done);
  const std::vector<std::string> rows = csv_lines(out.csv_path);
  REQUIRE(rows.size() == 3);
  CHECK_THAT(rows[1], Catch::StartsWith("vocab_size=40,40,,,,,,") && Catch::Contains(",failed,"));
  CHECK_THAT(rows[2], Catch::Contains(",done,"));
}

TEST_CASE("a signal during a point's last step completes that point and stops the sweep before the next",
          "[sweep][train][signal]") {
  test::TempDir dir("sweep-last-step");
  const std::string path = make_sweep(dir, "set: {train.max_steps: 2}\ngrid:\n  train.lr: [0.01, 0.02]\n");
  const SweepPlan plan = plan_sweep(path, {});
  SweepOptions opt;  // signals handled, as in the CLI
  opt.on_step = [](int64_t step) {
    if (step == 2) std::raise(SIGINT);
  };
  const SweepOutcome out = run_sweep(plan, opt);
  CHECK(out.interrupted);
  CHECK(out.results[0].status == PointStatus::Done);
  CHECK(fs::exists(run_dir_of(plan.configs[0]) + "/summary.json"));
  CHECK(out.results[1].status == PointStatus::Pending);
  CHECK_FALSE(fs::exists(run_dir_of(plan.configs[1])));
  CHECK(inspect_point(plan.configs[0]).action == PointState::Action::Skip);  // resuming skips it
}

TEST_CASE("SIGINT stops the running point at a checkpoint and the sweep before the next point",
          "[sweep][train][signal]") {
  test::TempDir dir("sweep-sigint");
  const std::string path = make_sweep(dir,
                                      "set: {train.max_steps: 200000, log.every: 1, eval.every: 0, checkpoint.every: "
                                      "0}\ngrid:\n  train.lr: [0.01, 0.02]\n");
  const SweepPlan plan = plan_sweep(path, {});
  SweepOptions opt;  // signals handled, as in the CLI
  opt.command_hint = "autonomoe sweep " + path;
  std::atomic<bool> finished{false};
  SweepOutcome out;
  std::thread worker([&] {
    out = run_sweep(plan, opt);
    finished = true;
  });
  // Wait until the first point has logged a step (the trainer's handler is installed by then).
  const std::string metrics = run_dir_of(plan.configs[0]) + "/metrics.jsonl";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!finished && std::chrono::steady_clock::now() < deadline &&
         (!fs::exists(metrics) || fs::file_size(metrics) == 0)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const bool started = !finished && fs::exists(metrics) && fs::file_size(metrics) > 0;
  if (started) std::raise(SIGINT);
  worker.join();
  REQUIRE(started);
  CHECK(out.interrupted);
  CHECK(out.results[0].status == PointStatus::Interrupted);
  CHECK(out.results[1].status == PointStatus::Pending);
  CHECK_FALSE(fs::exists(run_dir_of(plan.configs[1])));  // the next point never started
  const auto ckpt = latest_checkpoint(run_dir_of(plan.configs[0]) + "/checkpoints");
  REQUIRE(ckpt);
  CHECK(ckpt->step > 0);
  CHECK(ckpt->step < 200000);
  // the results are written all the same, and the same sweep resumes the point
  const std::vector<std::string> rows = csv_lines(out.csv_path);
  REQUIRE(rows.size() == 3);
  CHECK_THAT(rows[1], Catch::Contains(",interrupted,"));
  CHECK_THAT(rows[2], Catch::Contains(",pending,"));
  const PointState st = inspect_point(plan.configs[0]);
  CHECK(st.action == PointState::Action::Resume);
  CHECK(st.checkpoint_step == ckpt->step);
}
