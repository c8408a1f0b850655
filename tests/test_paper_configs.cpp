// The shipped experiment configs: configs/paper/ (the AoE and AdaMoE papers' settings) and
// configs/tiny/ (CPU-sized analogs) all load and validate, their READMEs list every file, and
// their global batch is the paper's 2048 x 2048 tokens on 1, 8 and 16 GPUs, and count_params gives
// the AoE paper's sizes: 732M total / 247M active for the small models, ~4B /
// 1.18B for the 4B pair, with AoE matching MoE in total parameters (AoE Eq. 5).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "model/model_info.h"
#include "train/batch.h"

using namespace am;
namespace fs = std::filesystem;

namespace {

std::string configs_dir(const std::string& sub) { return std::string(AM_SOURCE_DIR) + "/configs/" + sub; }

// Every *.yaml file of configs/<sub>/, by file name.
std::vector<std::string> yaml_files(const std::string& sub) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(configs_dir(sub))) {
    if (entry.path().extension() == ".yaml") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Loads every file of configs/<sub>/; a file that does not validate fails with its message.
std::map<std::string, Config> load_all(const std::string& sub) {
  std::map<std::string, Config> out;
  for (const std::string& name : yaml_files(sub)) {
    INFO(sub << "/" << name);
    try {
      out.emplace(name, load_config(configs_dir(sub) + "/" + name));
    } catch (const UserError& e) {
      FAIL_CHECK(e.what());
    }
  }
  return out;
}

bool within(double value, double target, double rel) { return std::abs(value - target) <= rel * std::abs(target); }

bool is_aoe(const Config& c) {
  return c.model.moe.scorer.type == "act_norm" && c.model.moe.expert.type == "factorized";
}

}  // namespace

TEST_CASE("configs/paper: every file loads and validates, and README.md lists it", "[config][paper]") {
  const std::map<std::string, Config> cfgs = load_all("paper");
  const std::string readme = read_text(configs_dir("paper") + "/README.md");
  REQUIRE(cfgs.size() == yaml_files("paper").size());
  // The rows the lead asked for: Table 2 rows 1-12, Table 3 (4), the 4B pair, null experts (2).
  auto count = [&cfgs](const std::string& prefix) {
    return std::count_if(cfgs.begin(), cfgs.end(),
                         [&prefix](const auto& kv) { return kv.first.rfind(prefix, 0) == 0; });
  };
  CHECK(count("t2_r") == 12);
  CHECK(count("t3_") == 4);
  CHECK(count("t5_4b_") == 2);
  CHECK(count("null_") == 2);
  for (const auto& [name, cfg] : cfgs) {
    INFO(name);
    CHECK_THAT(readme, Catch::Contains("`" + name + "`"));
    // The paper's shared settings reach every file.
    CHECK(cfg.model.vocab_size == 32000);
    CHECK(cfg.model.tie_embeddings);
    CHECK(cfg.model.moe.n_experts == 8);
    // 4.2M tokens per step, the same on 1, 8 and 16 GPUs (the accumulation is derived).
    CHECK(cfg.train.global_batch == 2048);
    CHECK(cfg.train.grad_accum == 0);
    for (const auto& [gpus, accum] : std::vector<std::pair<int, int>>{{1, 256}, {8, 32}, {16, 16}}) {
      INFO(gpus << " GPUs");
      const BatchPlan p = derive_batch(cfg, gpus, "test");
      CHECK(p.global * cfg.data.seq_len == 4194304);
      CHECK(p.accum == accum);
      CHECK(int64_t{p.micro} * p.accum * p.dp == 2048);
    }
    CHECK(within(double(cfg.train.max_steps) * 4194304, 100e9, 1e-4));  // 100B tokens
    CHECK(cfg.train.warmup_steps == 4800);
    CHECK(cfg.train.min_lr == 1.28e-5);
    CHECK(cfg.data.train.rfind("data/redpajama/", 0) == 0);
  }
}

TEST_CASE("configs/paper: 732M total / 247M active for the AoE small models", "[config][paper]") {
  const std::map<std::string, Config> cfgs = load_all("paper");
  REQUIRE(cfgs.count("t2_r01_moe.yaml"));
  REQUIRE(cfgs.count("t2_r02_moe_aux.yaml"));
  const ParamCounts moe = count_params(cfgs.at("t2_r01_moe.yaml").model);
  const int64_t L = 12, d = 768, V = 32000, n = 8, expert = 3 * d * 3072;
  for (const auto& [name, cfg] : cfgs) {
    if (name.rfind("t5_", 0) == 0) continue;
    INFO(name);
    const MoeConfig& m = cfg.model.moe;
    const ParamCounts pc = count_params(cfg.model);
    if (m.scorer.type == "large_router") {
      // Row 4 adds parameters on purpose: A [2048, 768] + B [8, 2048] replace W_r [8, 768].
      const int64_t h = m.scorer.d_hidden, extra = L * (h * d + n * h - n * d);
      CHECK(h == 8 * 256);
      CHECK(pc.total == moe.total + extra);
      CHECK(pc.active == moe.active + extra);
      continue;
    }
    CHECK(within(double(pc.total), 732e6, 0.01));
    if (m.selector.type == "topp") {
      // Nominally every expert may be active: all of them, and the embedding once more (it is
      // counted as input embedding and as LM head).
      CHECK(pc.active == pc.total + V * d);
    } else if (m.selector.n_null > 0) {
      // k = 3 slots counted as true experts (an upper bound): one expert more than top-2.
      const ParamCounts base =
          count_params((is_aoe(cfg) ? cfgs.at("t2_r10_aoe_dlow256_aux.yaml") : cfgs.at("t2_r02_moe_aux.yaml")).model);
      const int64_t null_params = is_aoe(cfg) ? m.selector.n_null : m.selector.n_null * d;
      const int64_t one_expert = is_aoe(cfg) ? d * 256 + 256 * 3840 + 2 * d * 3840 : expert;  // d_low 256: d_wide 3840
      CHECK(m.selector.k == 3);
      CHECK(pc.total == base.total + L * null_params);
      CHECK(pc.active == base.active + L * (null_params + one_expert));
    } else {
      CHECK(within(double(pc.active), 247e6, 0.01));
    }
    // Eq. 5: an AoE or factorized model has the MoE baseline's parameters.
    if (m.expert.type == "factorized") CHECK(within(double(pc.total), double(moe.total), 0.005));
  }
}

TEST_CASE("configs/paper: AoE Eq. 5 widths of the Table 2 rows and the 4B pair", "[config][paper]") {
  const std::map<std::string, Config> cfgs = load_all("paper");
  const std::map<int, int> paper_width = {{64, 4393}, {128, 4194}, {256, 3840}, {512, 3264}};
  int factorized = 0;
  for (const auto& [name, cfg] : cfgs) {
    const MoeConfig& m = cfg.model.moe;
    if (m.expert.type != "factorized" || name.rfind("t5_", 0) == 0) continue;
    INFO(name);
    REQUIRE(paper_width.count(m.expert.d_low));
    CHECK(m.hidden_width(cfg.model.d_model) == paper_width.at(m.expert.d_low));
    ++factorized;
  }
  CHECK(factorized == 12);  // rows 3 and 5-12, two Table 3 AoE files, AoE with null experts

  REQUIRE(cfgs.count("t5_4b_moe.yaml"));
  REQUIRE(cfgs.count("t5_4b_aoe.yaml"));
  const Config& big_moe = cfgs.at("t5_4b_moe.yaml");
  const Config& big_aoe = cfgs.at("t5_4b_aoe.yaml");
  CHECK(big_aoe.model.moe.hidden_width(1280) == 6470);
  CHECK(big_aoe.model.moe.expert.d_low == 400);
  CHECK(big_moe.train.lr == 3.2e-4);
  CHECK(big_aoe.train.lr == 3.2e-4);
  const ParamCounts pm = count_params(big_moe.model), pa = count_params(big_aoe.model);
  CHECK(within(double(pm.total), 4e9, 0.01));
  CHECK(within(double(pm.active), 1.18e9, 0.01));
  CHECK(within(double(pa.total), 4e9, 0.01));
  CHECK(within(double(pa.active), 1.18e9, 0.01));
  CHECK(within(double(pa.total), double(pm.total), 0.005));
}

TEST_CASE("configs/tiny: every file loads and validates, and README.md lists it", "[config][paper]") {
  const std::map<std::string, Config> cfgs = load_all("tiny");
  const std::string readme = read_text(configs_dir("tiny") + "/README.md");
  REQUIRE(cfgs.size() == yaml_files("tiny").size());
  std::map<std::string, std::string> names;  // run.name -> file: runs must not share a directory
  int aoe = 0;
  for (const auto& [file, cfg] : cfgs) {
    INFO(file);
    CHECK_THAT(readme, Catch::Contains("`" + file + "`"));
    CHECK(cfg.model.vocab_size == 4096);
    CHECK(cfg.data.train == "data/brown/brown_train_*.bin");
    CHECK(cfg.model.d_model >= 64);
    CHECK(cfg.model.d_model <= 128);
    CHECK(cfg.model.n_layers >= 2);
    CHECK(cfg.model.n_layers <= 4);
    CHECK(names.emplace(cfg.run.name, file).second);
    aoe += is_aoe(cfg);
  }
  CHECK(cfgs.size() >= 10);
  CHECK(aoe >= 4);
}

TEST_CASE("count_params with untied embeddings and a fractional capacity factor", "[config][paper]") {
  // configs/tiny/moe.yaml: untied, so the embedding and LM head are both in total already;
  // active leaves out the 8 - 2 unselected experts (3 * 64 * 128 each) of both layers.
  const Config moe = load_config(configs_dir("tiny") + "/moe.yaml");
  REQUIRE_FALSE(moe.model.tie_embeddings);
  const int64_t expert = 3 * 64 * 128, L = 2;
  const ParamCounts pc = count_params(moe.model);
  CHECK(pc.active == pc.total - L * (8 - 2) * expert);
  // Expert choice: capacity_factor experts per token on average, fractional.
  const Config ec =
      load_config(configs_dir("tiny") + "/expert_choice.yaml", {"model.moe.selector.capacity_factor=1.5"});
  const ParamCounts pe = count_params(ec.model);
  CHECK(pe.total == pc.total);
  CHECK(pe.active == pc.total - L * expert * 13 / 2);  // 8 - 1.5 experts left out
  // Tied: the total loses the LM head, the active count keeps counting it.
  const Config tied = load_config(configs_dir("tiny") + "/moe.yaml", {"model.tie_embeddings=true"});
  const ParamCounts pt = count_params(tied.model);
  CHECK(pt.total == pc.total - 4096 * 64);
  CHECK(pt.active == pc.active);
}
