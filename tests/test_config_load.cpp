// load_config(): values and defaults, extends chains, --set overrides, schema consistency.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/schema.h"
#include "config/suggest.h"
#include "core/error.h"

using namespace am;

namespace {

std::string fixture(const std::string& rel) { return std::string(AM_SOURCE_DIR) + "/tests/data/configs/" + rel; }

const ResolvedKey& resolved(const Config& cfg, const std::string& path) {
  for (const ResolvedKey& r : cfg.resolved) {
    if (r.path == path) return r;
  }
  FAIL("no resolved key " << path);
  throw;  // unreachable
}

std::string error_of(const std::string& path, const std::vector<std::string>& overrides) {
  try {
    load_config(path, overrides);
  } catch (const UserError& e) {
    return e.what();
  }
  FAIL("expected a UserError loading " << path);
  return "";
}

}  // namespace

TEST_CASE("a valid config loads with its values and the documented defaults", "[config]") {
  const Config cfg = load_config(fixture("base.yaml"));
  // Values set in base.yaml.
  CHECK(cfg.run.seed == 7);
  CHECK(cfg.run.backend == "cpu");
  CHECK(cfg.model.vocab_size == 256);
  CHECK(cfg.model.d_model == 64);
  CHECK(cfg.model.n_layers == 2);
  CHECK(cfg.model.n_heads == 4);
  CHECK(cfg.model.n_kv_heads == 2);
  CHECK(cfg.model.max_seq_len == 128);
  CHECK(cfg.model.moe.n_experts == 4);
  CHECK(cfg.model.moe.d_ffn == 128);
  CHECK(cfg.model.moe.selector.k == 2);
  CHECK(cfg.data.train == "data/tiny/train_*.bin");
  CHECK(cfg.data.seq_len == 64);
  CHECK(cfg.train.micro_batch_size == 4);
  CHECK(cfg.train.max_steps == 100);
  CHECK(cfg.train.lr == 3.0e-3);
  CHECK(cfg.train.min_lr == 3.0e-4);
  CHECK(cfg.train.warmup_steps == 10);
  // Defaults, as config.h documents them.
  CHECK(cfg.run.name == "base");  // the config file's stem
  CHECK(cfg.run.out_dir == "runs");
  CHECK(cfg.run.threads == 0);
  CHECK(cfg.run.precision == "fp32");
  CHECK(cfg.model.rope_theta == 10000.0);
  CHECK(cfg.model.norm_eps == 1e-5);
  CHECK(cfg.model.tie_embeddings == false);
  CHECK(cfg.model.init_std == 0.02);
  CHECK(cfg.model.moe.scorer.type == "router");
  CHECK(cfg.model.moe.selector.type == "topk");
  CHECK(cfg.model.moe.aux.load_balance == 0.01);
  CHECK(cfg.model.moe.aux.z_loss == 0.0);
  CHECK(cfg.model.moe.expert.type == "swiglu");
  CHECK(cfg.model.moe.expert.d_low == 0);
  CHECK(cfg.model.moe.expert.d_wide == 0);
  CHECK(cfg.model.moe.expert.multiple_of == 1);
  CHECK(cfg.model.moe.scorer.node == "latent");
  CHECK(cfg.model.moe.scorer.norm == "l2");
  CHECK(cfg.model.moe.scorer.d_hidden == 0);
  CHECK(cfg.model.moe.selector.capacity_factor == 0.0);
  CHECK(cfg.model.moe.selector.p == 0.6);
  CHECK(cfg.model.moe.selector.renormalize == false);
  CHECK(cfg.model.moe.selector.max_k == 0);
  CHECK(cfg.model.moe.selector.group == "batch");
  CHECK(cfg.model.moe.selector.n_null == 0);
  CHECK(cfg.model.moe.aux.load_balance.points == std::vector<std::pair<int64_t, double>>{{0, 0.01}});
  CHECK(cfg.model.moe.aux.null_load_balance == 0.0);
  CHECK(cfg.model.moe.aux.entropy == 0.0);
  CHECK(cfg.model.moe.aux.bias_update_rate == 0.0);
  CHECK(cfg.data.val == "");
  CHECK(cfg.data.shuffle == true);
  CHECK(cfg.train.grad_accum == 0);
  CHECK(cfg.train.lr_schedule == "cosine");
  CHECK(cfg.train.weight_decay == 0.1);
  CHECK(cfg.train.beta1 == 0.9);
  CHECK(cfg.train.beta2 == 0.95);
  CHECK(cfg.train.eps == 1e-8);
  CHECK(cfg.train.grad_clip == 1.0);
  CHECK(cfg.log.every == 10);
  CHECK(cfg.eval.every == 0);
  CHECK(cfg.eval.batches == 20);
  CHECK(cfg.checkpoint.every == 0);
  CHECK(cfg.checkpoint.keep_last == 3);
  CHECK(cfg.checkpoint.save_initial == false);

  // resolved: every schema key in schema order, with value text and source.
  CHECK(cfg.source_path == fixture("base.yaml"));
  REQUIRE(cfg.resolved.size() == config_schema().size());
  for (size_t i = 0; i < cfg.resolved.size(); ++i) {
    CHECK(cfg.resolved[i].path == config_schema()[i].path);
  }
  CHECK(resolved(cfg, "model.d_model").value == "64");
  CHECK(resolved(cfg, "model.d_model").source == fixture("base.yaml") + ":7");
  CHECK(resolved(cfg, "train.lr").value == "0.003");
  CHECK(resolved(cfg, "train.lr").source == fixture("base.yaml") + ":24");
  CHECK(resolved(cfg, "train.beta1").source == "default");
  CHECK(resolved(cfg, "run.name").value == "base");
  CHECK(resolved(cfg, "run.name").source == "default");
  CHECK(resolved(cfg, "model.tie_embeddings").value == "false");
}

TEST_CASE("schema defaults equal the Config struct's initialisers", "[config]") {
  // Code that builds a Config by hand must get the same defaults as a loaded one.
  const Config loaded = load_config(fixture("base.yaml"));
  const Config plain;
  for (const KeySpec& key : config_schema()) {
    if (key.required || key.path == "run.name") continue;
    if (resolved(loaded, key.path).source != "default") continue;
    INFO(key.path);
    CHECK(key.field.get(loaded) == key.field.get(plain));
  }
}

TEST_CASE("extends: chains with relative paths merge deeply, the child winning", "[config]") {
  const Config cfg = load_config(fixture("sub/grandchild.yaml"));
  CHECK(cfg.run.name == "grand");            // grandchild
  CHECK(cfg.model.moe.aux.z_loss == 0.001);  // grandchild, deep inside model.moe
  CHECK(cfg.model.n_layers == 3);            // child overrides base
  CHECK(cfg.model.moe.selector.k == 1);      // child, inside model.moe.selector
  CHECK(cfg.train.lr == 1.0e-3);             // child
  CHECK(cfg.model.d_model == 64);            // base, next to a key the child changed
  CHECK(cfg.model.moe.n_experts == 4);       // base, sibling of the child's moe.selector
  CHECK(cfg.train.min_lr == 3.0e-4);         // base, sibling of the child's train.lr
  CHECK(cfg.run.seed == 7);                  // base, sibling of the grandchild's run.name
  CHECK(resolved(cfg, "model.n_layers").source == fixture("sub/child.yaml") + ":4");
  CHECK(resolved(cfg, "model.moe.aux.z_loss").source == fixture("sub/grandchild.yaml") + ":5");
  CHECK(resolved(cfg, "model.d_model").source == fixture("base.yaml") + ":7");
  CHECK(cfg.source_path == fixture("sub/grandchild.yaml"));
}

TEST_CASE("extends: a cycle is reported with its chain", "[config]") {
  const std::string msg = error_of(fixture("cycle_a.yaml"), {});
  CHECK_THAT(msg, Catch::Contains("extends cycle"));
  CHECK_THAT(msg, Catch::Contains(fixture("cycle_a.yaml") + " -> " + fixture("cycle_b.yaml") + " -> " +
                                  fixture("cycle_a.yaml")));
  CHECK_THAT(msg, Catch::Contains(fixture("cycle_b.yaml") + ":1"));  // the extends that closes it
}

TEST_CASE("overrides (--set): nested keys, sections, later wins, source recorded", "[config]") {
  const Config cfg =
      load_config(fixture("base.yaml"),
                  {"model.moe.selector.k=1", "train.lr=5e-4", "model.moe={n_experts: 2, d_ffn: 96}", "run.name=my run",
                   "data.val=", "model.n_layers=5", "model.n_layers=6", "model.tie_embeddings=true"});
  CHECK(cfg.model.moe.selector.k == 1);
  CHECK(cfg.train.lr == 5e-4);
  CHECK(cfg.model.moe.n_experts == 2);
  CHECK(cfg.model.moe.d_ffn == 96);
  CHECK(cfg.model.moe.selector.k == 1);  // the section override merged, it did not replace
  CHECK(cfg.run.name == "my run");
  CHECK(cfg.data.val == "");
  CHECK(cfg.model.n_layers == 6);
  CHECK(cfg.model.tie_embeddings == true);
  CHECK(resolved(cfg, "model.n_layers").source == "--set");
  CHECK(resolved(cfg, "model.moe.d_ffn").source == "--set");
  CHECK(resolved(cfg, "model.d_model").source == fixture("base.yaml") + ":7");
}

TEST_CASE("overrides (--set): type-checked, unknown keys and malformed ones named", "[config]") {
  const std::string base = fixture("base.yaml");
  std::string msg = error_of(base, {"model.d_model=abc"});
  CHECK_THAT(msg, Catch::Contains("--set model.d_model=abc"));
  CHECK_THAT(msg, Catch::Contains("model.d_model: expected an integer, got 'abc'"));

  msg = error_of(base, {"model.d_modle=64"});
  CHECK_THAT(msg, Catch::Contains("--set model.d_modle=64"));
  CHECK_THAT(msg, Catch::Contains("unknown key 'model.d_modle'"));
  CHECK_THAT(msg, Catch::Contains("did you mean model.d_model?"));

  msg = error_of(base, {"model.d_model"});
  CHECK_THAT(msg, Catch::Contains("--set model.d_model"));
  CHECK_THAT(msg, Catch::Contains("malformed override; expected key.path=value"));

  msg = error_of(base, {"train.beta1=1"});
  CHECK_THAT(msg, Catch::Contains("--set train.beta1=1: train.beta1: 1 is out of range"));
  CHECK_THAT(msg, Catch::Contains("[0, 1)"));

  msg = error_of(base, {"data.train=*.bin"});
  CHECK_THAT(msg, Catch::Contains("--set data.train=*.bin"));
  CHECK_THAT(msg, Catch::Contains("not valid YAML"));

  msg = error_of(base, {"model.moe={n_expert: 2}"});
  CHECK_THAT(msg, Catch::Contains("--set model.moe={n_expert: 2}: unknown key 'model.moe.n_expert'"));
  CHECK_THAT(msg, Catch::Contains("did you mean model.moe.n_experts?"));

  // Overrides are applied before the cross-field rules.
  msg = error_of(base, {"model.n_heads=3"});
  CHECK_THAT(msg, Catch::Contains("model.n_heads = 3 (--set)"));
}

TEST_CASE("unknown-key suggestions use edit distance over paths and sibling names", "[config]") {
  CHECK(edit_distance("d_modle", "d_model") == 1);  // a transposition is one edit
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(suggest_key("model.d_modle") == "model.d_model");
  CHECK(suggest_key("trian.lr") == "train.lr");
  CHECK(suggest_key("model.moe.selctor") == "model.moe.selector");
  CHECK(suggest_key("model.moe.selector.kk") == "model.moe.selector.k");
  CHECK(suggest_key("n_experts") == "model.moe.n_experts");       // right name, wrong place
  CHECK(suggest_key("model.n_expert") == "model.moe.n_experts");  // both
  CHECK(suggest_key("model.completely_different") == "");
  CHECK_THAT(unknown_key_hint("model.moe.zzzzzz"),
             Catch::Contains("valid keys in model.moe: n_experts, d_ffn, expert, scorer, selector, aux"));
  CHECK(suggest_key("model.moe.expert.dlow") == "model.moe.expert.d_low");
  CHECK(suggest_key("model.moe.aux.null_load_balanc") == "model.moe.aux.null_load_balance");
}
