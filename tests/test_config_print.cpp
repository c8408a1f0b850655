// Printing configs: config_to_yaml round trip, the start-up table, and docs/configs.md.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "config/config.h"
#include "config/schema.h"

using namespace am;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& rel) { return std::string(AM_SOURCE_DIR) + "/tests/data/configs/" + rel; }

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A scratch directory removed at the end of the test.
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("am_test_config_" + std::to_string(getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

// Every field, written out by hand (not through the schema) so that a schema row bound to the
// wrong field, or a field missing from the schema, fails here.
void check_equal(const Config& a, const Config& b) {
  CHECK(a.run.name == b.run.name);
  CHECK(a.run.out_dir == b.run.out_dir);
  CHECK(a.run.seed == b.run.seed);
  CHECK(a.run.backend == b.run.backend);
  CHECK(a.run.threads == b.run.threads);
  CHECK(a.run.precision == b.run.precision);
  CHECK(a.model.vocab_size == b.model.vocab_size);
  CHECK(a.model.d_model == b.model.d_model);
  CHECK(a.model.n_layers == b.model.n_layers);
  CHECK(a.model.n_heads == b.model.n_heads);
  CHECK(a.model.n_kv_heads == b.model.n_kv_heads);
  CHECK(a.model.max_seq_len == b.model.max_seq_len);
  CHECK(a.model.rope_theta == b.model.rope_theta);
  CHECK(a.model.norm_eps == b.model.norm_eps);
  CHECK(a.model.tie_embeddings == b.model.tie_embeddings);
  CHECK(a.model.init_std == b.model.init_std);
  CHECK(a.model.moe.n_experts == b.model.moe.n_experts);
  CHECK(a.model.moe.d_ffn == b.model.moe.d_ffn);
  CHECK(a.model.moe.scorer.type == b.model.moe.scorer.type);
  CHECK(a.model.moe.selector.type == b.model.moe.selector.type);
  CHECK(a.model.moe.selector.k == b.model.moe.selector.k);
  CHECK(a.model.moe.aux.load_balance == b.model.moe.aux.load_balance);
  CHECK(a.model.moe.aux.z_loss == b.model.moe.aux.z_loss);
  CHECK(a.model.moe.expert.type == b.model.moe.expert.type);
  CHECK(a.model.moe.expert.d_low == b.model.moe.expert.d_low);
  CHECK(a.model.moe.expert.d_wide == b.model.moe.expert.d_wide);
  CHECK(a.model.moe.expert.multiple_of == b.model.moe.expert.multiple_of);
  CHECK(a.model.moe.scorer.node == b.model.moe.scorer.node);
  CHECK(a.model.moe.scorer.norm == b.model.moe.scorer.norm);
  CHECK(a.model.moe.scorer.d_hidden == b.model.moe.scorer.d_hidden);
  CHECK(a.model.moe.scorer.activation == b.model.moe.scorer.activation);
  CHECK(a.model.moe.selector.gate == b.model.moe.selector.gate);
  CHECK(a.model.moe.selector.capacity_factor == b.model.moe.selector.capacity_factor);
  CHECK(a.model.moe.selector.p == b.model.moe.selector.p);
  CHECK(a.model.moe.selector.renormalize == b.model.moe.selector.renormalize);
  CHECK(a.model.moe.selector.max_k == b.model.moe.selector.max_k);
  CHECK(a.model.moe.selector.group == b.model.moe.selector.group);
  CHECK(a.model.moe.selector.n_null == b.model.moe.selector.n_null);
  CHECK(a.model.moe.aux.null_load_balance == b.model.moe.aux.null_load_balance);
  CHECK(a.model.moe.aux.entropy == b.model.moe.aux.entropy);
  CHECK(a.model.moe.aux.bias_update_rate == b.model.moe.aux.bias_update_rate);
  CHECK(a.data.train == b.data.train);
  CHECK(a.data.val == b.data.val);
  CHECK(a.data.seq_len == b.data.seq_len);
  CHECK(a.data.shuffle == b.data.shuffle);
  CHECK(a.train.micro_batch_size == b.train.micro_batch_size);
  CHECK(a.train.grad_accum == b.train.grad_accum);
  CHECK(a.train.global_batch == b.train.global_batch);
  CHECK(a.train.max_steps == b.train.max_steps);
  CHECK(a.train.lr == b.train.lr);
  CHECK(a.train.min_lr == b.train.min_lr);
  CHECK(a.train.warmup_steps == b.train.warmup_steps);
  CHECK(a.train.lr_schedule == b.train.lr_schedule);
  CHECK(a.train.weight_decay == b.train.weight_decay);
  CHECK(a.train.beta1 == b.train.beta1);
  CHECK(a.train.beta2 == b.train.beta2);
  CHECK(a.train.eps == b.train.eps);
  CHECK(a.train.grad_clip == b.train.grad_clip);
  CHECK(a.log.every == b.log.every);
  CHECK(a.eval.every == b.eval.every);
  CHECK(a.eval.batches == b.eval.batches);
  CHECK(a.checkpoint.every == b.checkpoint.every);
  CHECK(a.checkpoint.keep_last == b.checkpoint.keep_last);
  CHECK(a.checkpoint.save_initial == b.checkpoint.save_initial);
}

}  // namespace

TEST_CASE("config_to_yaml round-trips exactly, awkward values included", "[config]") {
  const Config original =
      load_config(fixture("sub/grandchild.yaml"),
                  {"run.name=\"null\"", "run.out_dir=' lead: and #hash'", "data.val=\"\"",
                   "train.lr=0.30000000000000004", "train.min_lr=1.2345678901234567e-40", "model.init_std=0.1",
                   "run.seed=18446744073709551615", "model.rope_theta=500000", "checkpoint.save_initial=true",
                   "train.lr_schedule=linear", "model.moe.aux.load_balance=0.0123456789012345678",
                   "model.moe.expert={type: factorized, d_low: 16, multiple_of: 8}",
                   "model.moe.scorer={type: act_norm, norm: linf}",
                   "model.moe.selector={type: topp, p: 0.55, renormalize: true, max_k: 3}", "model.moe.aux.z_loss=0",
                   "model.moe.aux.entropy=[[0, 1e-4], [7, 0.30000000000000004]]"});
  CHECK(original.run.name == "null");
  CHECK(original.run.out_dir == " lead: and #hash");
  CHECK(original.train.lr == 0.30000000000000004);
  CHECK(original.run.seed == 18446744073709551615ull);
  CHECK(original.model.moe.aux.entropy.points ==
        std::vector<std::pair<int64_t, double>>{{0, 1e-4}, {7, 0.30000000000000004}});

  const std::string yaml = config_to_yaml(original);
  CHECK(yaml.find("extends") == std::string::npos);
  CHECK_THAT(yaml, Catch::Contains("    entropy: [[0, 0.0001], [7, 0.30000000000000004]]\n"));
  CHECK_THAT(yaml, Catch::Contains("    load_balance: 0.01234567890123456"));  // constant
  for (const KeySpec& key : config_schema()) {                                 // every key is written
    CHECK_THAT(yaml, Catch::Contains(key.name() + ":"));
  }
  TempDir dir;
  const std::string path = (dir.path / "resolved.yaml").string();
  std::ofstream(path) << yaml;
  const Config reloaded = load_config(path);
  check_equal(original, reloaded);
  CHECK(config_to_yaml(reloaded) == yaml);
  for (const ResolvedKey& r : reloaded.resolved) CHECK(r.source != "default");
}

TEST_CASE("config_to_yaml nests sections", "[config]") {
  const std::string yaml = config_to_yaml(load_config(fixture("base.yaml")));
  CHECK_THAT(yaml, Catch::Contains("model:\n  vocab_size: 256\n"));
  CHECK_THAT(yaml, Catch::Contains("\n  moe:\n    n_experts: 4\n    d_ffn: 128\n    expert:\n"
                                   "      type: swiglu\n"));
  CHECK_THAT(yaml, Catch::Contains("\n    scorer:\n      type: router\n      d_hidden: 0\n"));
  CHECK_THAT(yaml, Catch::Contains("\n    selector:\n      type: topk\n      k: 2\n"));
  CHECK_THAT(yaml, Catch::Contains("\n    aux:\n      load_balance: 0.01\n"));  // a schedule
  CHECK_THAT(yaml, Catch::Contains("\n  rope_theta: 10000.0\n"));               // floats stay floats
}

TEST_CASE("config_table: one aligned row per key with value and source", "[config]") {
  const Config cfg = load_config(fixture("base.yaml"), {"train.micro_batch_size=2"});
  const std::string table = config_table(cfg);
  std::istringstream lines(table);
  std::string header;
  std::getline(lines, header);
  const size_t value_col = header.find("value"), source_col = header.find("source");
  REQUIRE(value_col != std::string::npos);
  REQUIRE(source_col != std::string::npos);
  size_t rows = 0;
  for (std::string line; std::getline(lines, line); ++rows) {
    REQUIRE(rows < cfg.resolved.size());
    const ResolvedKey& r = cfg.resolved[rows];
    INFO(line);
    CHECK(line.rfind(r.path, 0) == 0);
    CHECK(line.substr(value_col, r.value.size()) == r.value);
    CHECK(line.substr(source_col) == r.source);
  }
  CHECK(rows == config_schema().size());
  CHECK_THAT(table, Catch::Contains("--set"));
  CHECK_THAT(table, Catch::Contains(fixture("base.yaml") + ":7"));
}

TEST_CASE("docs/configs.md matches the schema", "[config][config-docs]") {
  const std::string path = std::string(AM_SOURCE_DIR) + "/docs/configs.md";
  if (const char* update = std::getenv("AM_UPDATE_DOCS"); update && std::string(update) == "1") {
    write_config_docs(path);
  }
  const std::string generated = config_docs_markdown();
  for (const KeySpec& key : config_schema()) CHECK_THAT(generated, Catch::Contains(key.path));
  INFO(
      "docs/configs.md is out of date with src/config/schema.cpp. Regenerate it with\n"
      "  AM_UPDATE_DOCS=1 build/tests/autonomoe_tests \"[config-docs]\"\n"
      "(or `autonomoe config --docs > docs/configs.md`) and commit the result.");
  const std::string committed = read_text(path);
  size_t line = 1;  // the first line that differs, to point the reader at it
  for (size_t i = 0; i < std::min(committed.size(), generated.size()) && committed[i] == generated[i]; ++i) {
    line += committed[i] == '\n';
  }
  INFO("first difference at line " << line);
  const bool up_to_date = committed == generated;
  CHECK(up_to_date);
}
