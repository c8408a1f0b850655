// Training-loop tests on synthetic data: determinism, bit-exact resume, gradient accumulation,
// checkpoint refusal, and that training actually lowers the loss.
#include "io/checkpoint_dir.h"
#include "support/synthetic_run.h"
#include "train/trainer.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

using namespace am;
namespace fs = std::filesystem;

TEST_CASE("same config and seed give bitwise-equal losses and weights", "[train]") {
  test::TempDir dir("determinism");
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  const TrainSummary a = train(load_config(yaml, {"run.name=a"}), test::quiet_train());
  const TrainSummary b = train(load_config(yaml, {"run.name=b"}), test::quiet_train());
  REQUIRE(a.step_losses.size() == 6);
  CHECK(a.step_losses == b.step_losses);  // exact
  CHECK(test::file_bytes(a.last_checkpoint + "/model.safetensors") ==
        test::file_bytes(b.last_checkpoint + "/model.safetensors"));
  // a different seed gives a different run
  const TrainSummary c = train(load_config(yaml, {"run.name=c", "run.seed=99"}), test::quiet_train());
  CHECK(c.step_losses != a.step_losses);
}

TEST_CASE("a resumed run matches an uninterrupted one bit for bit", "[train][resume]") {
  test::TempDir dir("resume");
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  // The uninterrupted run: 6 steps, checkpoints at 3 and 6 (data shuffled, global batch 4 in micro-batches of 2:
  // accumulation 2).
  const std::vector<std::string> common = {"data.shuffle=true", "train.micro_batch_size=2"};
  auto with = [&](std::vector<std::string> v) {
    v.insert(v.end(), common.begin(), common.end());
    return v;
  };
  const TrainSummary full = train(load_config(yaml, with({"run.name=full"})), test::quiet_train());
  REQUIRE(full.step_losses.size() == 6);
  const auto ckpts = list_checkpoints(full.run_dir + "/checkpoints");
  REQUIRE(ckpts.size() == 2);
  REQUIRE(ckpts[0].step == 3);

  // Resume from the step-3 checkpoint into another run directory.
  TrainOptions opt = test::quiet_train();
  opt.resume = ckpts[0].path;
  const TrainSummary resumed = train(load_config(yaml, with({"run.name=resumed"})), opt);
  CHECK(resumed.start_step == 3);
  REQUIRE(resumed.step_losses.size() == 3);
  for (int i = 0; i < 3; ++i) CHECK(resumed.step_losses[i] == full.step_losses[3 + i]);  // exact
  for (const char* f : {"/model.safetensors", "/optimizer.safetensors"}) {
    INFO(f);
    CHECK(test::file_bytes(resumed.last_checkpoint + f) == test::file_bytes(full.last_checkpoint + f));
  }
  // metrics.jsonl of the resumed run starts after the checkpoint's step.
  std::ifstream m(resumed.run_dir + "/metrics.jsonl");
  std::string first;
  std::getline(m, first);
  CHECK(nlohmann::json::parse(first).at("step").get<int>() == 4);
}

TEST_CASE("bit-exact resume holds for AoE with null experts, annealed balancing and a selection bias",
          "[train][resume]") {
  test::TempDir dir("resume-aoe");
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  const std::vector<std::string> aoe = {"model.moe.expert.type=factorized",
                                        "model.moe.expert.d_low=4",
                                        "model.moe.scorer.type=act_norm",
                                        "model.moe.aux.z_loss=0",
                                        "model.moe.aux.load_balance=0",
                                        "model.moe.selector.n_null=2",
                                        "model.moe.selector.k=3",
                                        "model.moe.aux.null_load_balance=[[0, 0.05], [4, 0.001]]",
                                        "model.moe.aux.bias_update_rate=0.01"};
  auto with = [&](std::vector<std::string> v) {
    v.insert(v.end(), aoe.begin(), aoe.end());
    return v;
  };
  const TrainSummary full = train(load_config(yaml, with({"run.name=full"})), test::quiet_train());
  const auto ckpts = list_checkpoints(full.run_dir + "/checkpoints");
  REQUIRE(ckpts.size() == 2);
  TrainOptions opt = test::quiet_train();
  opt.resume = ckpts[0].path;
  const TrainSummary resumed = train(load_config(yaml, with({"run.name=resumed"})), opt);
  REQUIRE(resumed.step_losses.size() == 3);
  for (int i = 0; i < 3; ++i) CHECK(resumed.step_losses[i] == full.step_losses[3 + i]);
  CHECK(test::file_bytes(resumed.last_checkpoint + "/model.safetensors") ==
        test::file_bytes(full.last_checkpoint + "/model.safetensors"));
}

TEST_CASE("the AoE authors' two releases train deterministically and differ from the defaults", "[train]") {
  test::TempDir dir("aoe-releases");
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  const std::vector<std::vector<std::string>> releases = {
      // megablocks: AoE with gates = top-k of the softmax over all experts, not renormalised
      {"model.moe.expert.type=factorized", "model.moe.expert.d_low=4", "model.moe.scorer.type=act_norm",
       "model.moe.aux.z_loss=0", "model.moe.selector.gate=softmax_all"},
      // the linear BigRouter (Linear(d, h) then Linear(h, n), no activation)
      {"model.moe.scorer={type: large_router, d_hidden: 12, activation: linear}"},
  };
  const std::vector<std::string> defaults[] = {
      {"model.moe.expert.type=factorized", "model.moe.expert.d_low=4", "model.moe.scorer.type=act_norm",
       "model.moe.aux.z_loss=0"},
      {"model.moe.scorer={type: large_router, d_hidden: 12}"},
  };
  for (size_t r = 0; r < releases.size(); ++r) {
    auto named = [&](std::vector<std::string> v, const std::string& name) {
      v.push_back("run.name=" + name + std::to_string(r));
      return v;
    };
    const TrainSummary a = train(load_config(yaml, named(releases[r], "a")), test::quiet_train());
    const TrainSummary b = train(load_config(yaml, named(releases[r], "b")), test::quiet_train());
    REQUIRE(a.step_losses.size() == 6);
    CHECK(a.step_losses == b.step_losses);  // exact
    CHECK(test::file_bytes(a.last_checkpoint + "/model.safetensors") ==
          test::file_bytes(b.last_checkpoint + "/model.safetensors"));
    const TrainSummary c = train(load_config(yaml, named(defaults[r], "c")), test::quiet_train());
    CHECK(c.step_losses != a.step_losses);
  }
}

TEST_CASE("resume refuses a different model and a fresh run refuses existing checkpoints", "[train][resume]") {
  test::TempDir dir("refuse");
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  const TrainSummary s = train(load_config(yaml, {"run.name=r", "train.max_steps=3"}), test::quiet_train());

  // same run again without --resume
  CHECK_THROWS_WITH(train(load_config(yaml, {"run.name=r", "train.max_steps=3"}), test::quiet_train()),
                    Catch::Contains("already holds checkpoints") && Catch::Contains("--resume"));
  // resume with a different model
  TrainOptions opt = test::quiet_train();
  opt.resume = s.last_checkpoint;
  CHECK_THROWS_WITH(train(load_config(yaml, {"run.name=r2", "model.d_model=32"}), opt),
                    Catch::Contains("model.d_model"));
  // a corrupted checkpoint is refused by checksum
  {
    std::fstream f(s.last_checkpoint + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x7f');
  }
  CHECK_THROWS_WITH(train(load_config(yaml, {"run.name=r3", "train.max_steps=3"}), opt),
                    Catch::Contains("corrupt") && Catch::Contains("model.safetensors"));
  // --resume latest of a run without checkpoints
  TrainOptions latest = test::quiet_train();
  latest.resume = "latest";
  CHECK_THROWS_WITH(train(load_config(yaml, {"run.name=none"}), latest), Catch::Contains("no complete checkpoint"));
}

TEST_CASE("save_initial writes a step-0 checkpoint that a run can resume from", "[train][resume]") {
  test::TempDir dir("initial");
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  const TrainSummary a = train(load_config(yaml, {"run.name=a", "checkpoint.save_initial=true"}), test::quiet_train());
  const auto ckpts = list_checkpoints(a.run_dir + "/checkpoints");
  REQUIRE(ckpts.size() == 3);  // steps 0, 3, 6
  CHECK(ckpts[0].step == 0);
  TrainOptions opt = test::quiet_train();
  opt.resume = ckpts[0].path;
  const TrainSummary b = train(load_config(yaml, {"run.name=b"}), opt);
  CHECK(b.step_losses == a.step_losses);  // the whole run, reproduced from step 0
}

TEST_CASE("gradient accumulation over 2 micro-batches equals one batch twice as large", "[train]") {
  test::TempDir dir("accum");
  // fp64, no auxiliary losses (they are per micro-batch by definition), no shuffling
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  const std::vector<std::string> base = {"run.precision=fp64",
                                         "run.backend=cpu",
                                         "model.moe.aux.load_balance=0",
                                         "model.moe.aux.z_loss=0",
                                         "data.shuffle=false",
                                         "train.max_steps=3",
                                         "eval.every=0"};
  auto with = [&](std::vector<std::string> v) {
    v.insert(v.end(), base.begin(), base.end());
    return v;
  };
  const TrainSummary a =
      train(load_config(yaml, with({"run.name=a", "train.micro_batch_size=2"})), test::quiet_train());
  const TrainSummary b =
      train(load_config(yaml, with({"run.name=b", "train.micro_batch_size=4"})), test::quiet_train());
  REQUIRE(a.step_losses.size() == 3);
  for (int i = 0; i < 3; ++i) CHECK(a.step_losses[i] == Approx(b.step_losses[i]).epsilon(1e-10));
}

TEST_CASE("training lowers the loss on learnable data", "[train]") {
  test::TempDir dir("learn");
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  const TrainSummary s = train(
      load_config(yaml, {"run.name=l", "train.max_steps=60", "train.lr=0.02", "eval.every=0", "checkpoint.every=0"}),
      test::quiet_train());
  REQUIRE(s.step_losses.size() == 60);
  // log(32) = 3.47 at the start; the 17-cycle with 10% noise is learnable well below that.
  CHECK(s.step_losses.front() > 3.0);
  CHECK(s.step_losses.back() < s.step_losses.front() - 1.0);
  CHECK(s.final_val_loss < s.step_losses.front() - 1.0);
  // the run's summary.json records the same
  const auto j = nlohmann::json::parse(test::file_bytes(s.run_dir + "/summary.json"));
  CHECK(j.at("completed") == true);
  CHECK(j.at("steps") == 60);
  CHECK(j.at("final_val_loss").get<double>() == s.final_val_loss);
  CHECK(j.at("final_train_loss").get<double>() == s.step_losses.back());
  CHECK(j.at("experts_per_token").get<double>() == Approx(2.0));  // top-2, dropless
  CHECK(j.at("params_total").get<int64_t>() > j.at("params_active").get<int64_t>());
}
