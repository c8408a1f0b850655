// Hostile checkpoints (issue 10 points 3 and 4): a manifest that omits a file the loader reads, or
// lists none, is refused before anything is read; a damaged config is reported as a corrupt
// checkpoint, not as an invalid config; and the JSON inside a checkpoint (trainer state) gets errors
// naming the file and key, also when its checksum has been made to match (a step other than the
// checkpoint's, an unknown dtype, a loader position out of range or not where its tokens end). A
// step_<N> that is a symlink or a renamed copy is not taken as the newest checkpoint.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cpu/cpu_backend.h"
#include "io/atomic_file.h"
#include "io/checkpoint_dir.h"
#include "io/checksum.h"
#include "model/transformer.h"
#include "support/synthetic_run.h"
#include "train/checkpoint.h"

using namespace am;
namespace fs = std::filesystem;

namespace {

// A trained 2-step run's last checkpoint, copied to <dir>/<name> for a test to damage.
struct Fixture {
  test::TempDir dir{"hostile-ckpt"};
  std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  std::string ckpt = train(load_config(yaml, {"run.name=h", "train.max_steps=2"}), test::quiet_train()).last_checkpoint;

  std::string copy(const std::string& name) const {
    const std::string to = dir / name;
    fs::copy(ckpt, to, fs::copy_options::recursive);
    return to;
  }
};

nlohmann::json manifest_of(const std::string& ckpt) {
  return nlohmann::json::parse(read_file(ckpt + "/manifest.json"));
}

void set_manifest(const std::string& ckpt, const nlohmann::json& m) {
  write_file_atomic(ckpt + "/manifest.json", m.dump(2));
}

// Replaces `file` of the checkpoint and makes its manifest entry match (size and hash).
void replace_listed(const std::string& ckpt, const std::string& file, const std::string& content) {
  write_file_atomic(ckpt + "/" + file, content);
  nlohmann::json m = manifest_of(ckpt);
  m["files"][file] = {{"bytes", content.size()}, {"xxh3", xxh3_file(ckpt + "/" + file)}};
  set_manifest(ckpt, m);
}

// Loads the checkpoint the way resume does: its config, then weights, moments and trainer state.
void resume_load(const std::string& ckpt) {
  const Config cfg = load_checkpoint_config(ckpt);
  CpuBackend be(DType::F32, 1);
  Transformer model(be, cfg.model, 1, 4);
  AdamW opt(model.store(), cfg.train);
  load_checkpoint(ckpt, model.store(), &opt);
}

}  // namespace

TEST_CASE("a manifest must list every file the loader reads", "[checkpoint][hostile]") {
  const Fixture fx;
  REQUIRE_NOTHROW(resume_load(fx.ckpt));
  for (const char* file :
       {"model.safetensors", "trainer_state.json", "config.resolved.yaml", "optimizer.safetensors"}) {
    const std::string c = fx.copy(fmt::format("omit_{}", file));
    nlohmann::json m = manifest_of(c);
    m["files"].erase(file);
    set_manifest(c, m);
    CHECK_THROWS_WITH(resume_load(c),
                      Catch::Contains(c) && Catch::Contains("does not list '" + std::string(file) + "'"));
  }
  const std::string empty = fx.copy("empty_files");
  nlohmann::json m = manifest_of(empty);
  m["files"] = nlohmann::json::object();
  set_manifest(empty, m);
  CHECK_THROWS_WITH(load_checkpoint_config(empty), Catch::Contains("does not list 'model.safetensors'"));
}

TEST_CASE("a damaged config in a checkpoint is reported as a corrupt checkpoint", "[checkpoint][hostile]") {
  const Fixture fx;
  const std::string c = fx.copy("bad_config");
  std::string yaml = "model: {d_model: [oops\n";  // invalid YAML, padded to the listed size
  yaml.resize(read_file(c + "/config.resolved.yaml").size(), ' ');
  write_file_atomic(c + "/config.resolved.yaml", yaml);
  CHECK_THROWS_WITH(load_checkpoint_config(c),
                    Catch::Contains("is corrupt: file 'config.resolved.yaml'") && !Catch::Contains("YAML"));
}

TEST_CASE("a FIFO or a directory in place of a checkpoint file is refused without hanging", "[checkpoint][hostile]") {
  const Fixture fx;
  const std::string c = fx.copy("fifo");
  fs::remove(c + "/trainer_state.json");
  REQUIRE(::mkfifo((c + "/trainer_state.json").c_str(), 0600) == 0);
  CHECK_THROWS_WITH(load_checkpoint_config(c), Catch::Contains("is corrupt") && Catch::Contains("FIFO"));
  const std::string d = fx.copy("dir");
  fs::remove(d + "/manifest.json");
  fs::create_directory(d + "/manifest.json");
  CHECK_THROWS_WITH(load_checkpoint_config(d), Catch::Contains("is corrupt") && Catch::Contains("directory"));
}

TEST_CASE("trainer_state.json errors name the file and the key", "[checkpoint][hostile]") {
  const Fixture fx;
  const nlohmann::json good = nlohmann::json::parse(read_file(fx.ckpt + "/trainer_state.json"));
  struct Case {
    const char* key;
    nlohmann::json value;  // null: the key is removed
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"step", -3, "step: expected an integer >= 0, got -3"},
      {"step", "12", "step: expected an integer >= 0, got \"12\""},
      {"step", 1.5, "step: expected an integer >= 0, got 1.5"},
      {"tokens", nullptr, "tokens: missing"},
      {"elapsed_s", "soon", "elapsed_s: expected a number of seconds >= 0"},
      {"train_loader", 7, "train_loader: expected an object, got 7"},
      {"has_optimizer", "yes", "has_optimizer: expected true or false"},
      {"format", "something-else", "format: expected \"autonomoe-trainer-state\""},
      {"version", 2, "version: expected 1"},
      {"dtype", "X", "dtype: expected \"F32\" or \"F64\", got \"X\""},
      {"step", 0, "step: 0, but this is the checkpoint of step 2"},
      {"step", 3, "step: 3, but this is the checkpoint of step 2"},
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::string ckpt = fx.copy(fmt::format("state_{}", i++));
    nlohmann::json st = good;
    if (c.value.is_null()) {
      st.erase(c.key);
    } else {
      st[c.key] = c.value;
    }
    replace_listed(ckpt, "trainer_state.json", st.dump(2));
    CHECK_THROWS_WITH(resume_load(ckpt), Catch::Contains(ckpt + "/trainer_state.json: " + c.expect));
  }
  const std::string not_json = fx.copy("state_not_json");
  replace_listed(not_json, "trainer_state.json", "{\"step\": ");
  CHECK_THROWS_WITH(resume_load(not_json), Catch::Contains(not_json + "/trainer_state.json: not valid JSON"));
}

TEST_CASE("a damaged data loader state names trainer_state.json and train_loader", "[checkpoint][hostile]") {
  const Fixture fx;
  const nlohmann::json good = nlohmann::json::parse(read_file(fx.ckpt + "/trainer_state.json"));
  const nlohmann::json print = good["train_loader"]["fingerprint"];
  REQUIRE(good["train_loader"]["epoch"] == 0);
  const int64_t cursor = good["train_loader"]["cursor"].get<int64_t>();
  REQUIRE(cursor > 0);
  const std::vector<std::pair<nlohmann::json, std::string>> cases = {
      {{{"epoch", "x"}, {"cursor", 0}, {"fingerprint", nlohmann::json::object()}},
       "train_loader.epoch: expected an integer >= 0, got \"x\""},
      {{{"epoch", 0}, {"cursor", -1}, {"fingerprint", print}}, "train_loader.cursor: expected an integer >= 0, got -1"},
      {{{"epoch", 0}, {"fingerprint", print}}, "train_loader.cursor: missing"},
      {{{"epoch", 0}, {"cursor", 0}, {"fingerprint", 3}}, "train_loader.fingerprint: expected an object, got 3"},
      {{{"epoch", 0}, {"cursor", 1000000000}, {"fingerprint", print}},
       "train_loader.cursor: expected an integer below "},
      {{{"epoch", int64_t{1} << 40}, {"cursor", cursor}, {"fingerprint", print}},
       "train_loader: epoch 1099511627776, cursor " + std::to_string(cursor) + " is not where tokens: "},
      {{{"epoch", 0}, {"cursor", cursor - 1}, {"fingerprint", print}},
       "train_loader: epoch 0, cursor " + std::to_string(cursor - 1) + " is not where tokens: "},
      {{{"epoch", 0}, {"cursor", 0}, {"fingerprint", {{"shards", {{{"name", 5}}}}}}}, "does not match"},
      {{{"epoch", 0}, {"cursor", 0}, {"fingerprint", {{"shards", {{"name", "x"}}}}}}, "does not match"},
  };
  int i = 0;
  for (const auto& [loader, expect] : cases) {
    INFO(expect);
    const std::string ckpt = fx.copy(fmt::format("loader_{}", i++));
    nlohmann::json st = good;
    st["train_loader"] = loader;
    replace_listed(ckpt, "trainer_state.json", st.dump(2));
    TrainOptions o = test::quiet_train();
    o.resume = ckpt;
    o.allow_schedule_change = true;  // the longer run is allowed: the loader state is what fails
    CHECK_THROWS_WITH(train(load_config(fx.yaml, {"run.name=h2", "train.max_steps=4"}), o),
                      Catch::Contains(ckpt + "/trainer_state.json: train_loader") && Catch::Contains(expect));
  }
}

TEST_CASE("a checkpoint under another step's name is not the newest, and is refused by name", "[checkpoint][hostile]") {
  const Fixture fx;
  const fs::path root = fs::path(fx.dir / "root");
  fs::create_directories(root);
  fs::copy(fx.ckpt, root / "step_00000002", fs::copy_options::recursive);
  fs::create_directory_symlink("step_00000002", root / "step_00000009");   // as `ln -s` would
  fs::copy(fx.ckpt, root / "step_00000007", fs::copy_options::recursive);  // a copy renamed
  const std::optional<CheckpointEntry> latest = latest_checkpoint(root.string());
  REQUIRE(latest.has_value());
  CHECK(latest->step == 2);
  CHECK(latest->path == (root / "step_00000002").string());
  CHECK(list_checkpoints(root.string()).size() == 1);
  prune_checkpoints(root.string(), 1);  // never touches what it does not list
  CHECK(fs::is_symlink(root / "step_00000009"));
  CHECK(fs::exists(root / "step_00000007"));
  // Named explicitly, each is refused: its manifest says step 2.
  for (const char* name : {"step_00000009", "step_00000007"}) {
    const std::string dir = (root / name).string();
    CHECK_THROWS_WITH(resume_load(dir),
                      Catch::Contains("manifest.json says step 2, but the directory is named " + std::string(name)));
  }
}

TEST_CASE("a bad manifest entry and a bad config value in a checkpoint name the file and key",
          "[checkpoint][hostile]") {
  const Fixture fx;
  const std::string entry = fx.copy("bad_entry");
  nlohmann::json m = manifest_of(entry);
  m["files"]["model.safetensors"]["bytes"] = -1;
  set_manifest(entry, m);
  CHECK_THROWS_WITH(
      load_checkpoint_config(entry),
      Catch::Contains("manifest.json: files: 'model.safetensors': expected") && Catch::Contains("\"bytes\":-1"));
  // A config whose checksum was made to match: the error of a user's config, naming file and key.
  const std::string cfg = fx.copy("bad_value");
  std::string yaml = read_file(cfg + "/config.resolved.yaml");
  const size_t at = yaml.find("max_steps: 2");
  REQUIRE(at != std::string::npos);
  yaml.replace(at, 12, "max_steps: many");
  replace_listed(cfg, "config.resolved.yaml", yaml);
  CHECK_THROWS_WITH(load_checkpoint_config(cfg),
                    Catch::Contains(cfg + "/config.resolved.yaml:") &&
                        Catch::Contains("train.max_steps: expected an integer, got 'many'"));
}
