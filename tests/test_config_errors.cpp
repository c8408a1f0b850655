// Broken configs: each fixture under tests/data/configs/broken/ must give a UserError whose
// message names the file (and line), the key, and what would be valid.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"

using namespace am;

namespace {

std::string fixture(const std::string& rel) { return std::string(AM_SOURCE_DIR) + "/tests/data/configs/" + rel; }

std::string error_of(const std::string& path, const std::vector<std::string>& overrides = {}) {
  try {
    load_config(path, overrides);
  } catch (const UserError& e) {
    return e.what();
  }
  FAIL("expected a UserError loading " << path);
  return "";
}

struct Broken {
  std::string file;                   // under tests/data/configs/broken/
  std::vector<std::string> expected;  // fragments the message must contain
};

}  // namespace

TEST_CASE("broken configs give messages naming file, line, key and what is valid", "[config]") {
  const std::string base = fixture("base.yaml");
  const std::vector<Broken> cases = {
      {"typo_key.yaml", {"typo_key.yaml:3: unknown key 'model.d_modle'", "did you mean model.d_model?"}},
      {"misplaced_key.yaml", {"misplaced_key.yaml:2: unknown key 'd_model'", "did you mean model.d_model?"}},
      {"wrong_type.yaml", {"wrong_type.yaml:3: model.n_layers: expected an integer, got 'four'"}},
      {"quoted_number.yaml",
       {"quoted_number.yaml:3: model.d_model: expected an integer, got the quoted string \"64\""}},
      {"top_level_list.yaml", {"top_level_list.yaml:1: the top level is a sequence, not a map"}},
      {"extends_list.yaml", {"extends_list.yaml:1: extends: expected a file name, got a sequence"}},
      {"int_as_float.yaml", {"int_as_float.yaml:3: train.max_steps: expected an integer, got '1e3'"}},
      {"out_of_range.yaml", {"out_of_range.yaml:3: train.beta2: 1.0 is out of range (valid: [0, 1))"}},
      {"bad_enum.yaml", {"bad_enum.yaml:3: run.backend: expected one of cpu, cuda, auto, got 'gpu'"}},
      {"missing_required.yaml", {"missing_required.yaml: missing required key model.d_model", "an integer >= 1"}},
      {"heads_divide.yaml",
       {"heads_divide.yaml", "model.d_model = 64 (" + base + ":7) must be divisible by",
        "model.n_heads = 3 (" + fixture("broken/heads_divide.yaml") + ":3)"}},
      {"head_dim_odd.yaml",
       {"head_dim_odd.yaml", "model.d_model = 48", "model.n_heads = 16", "= 3 must be even for RoPE"}},
      {"kv_heads.yaml", {"kv_heads.yaml:3)", "model.n_kv_heads = 3", "a divisor of model.n_heads = 4"}},
      {"topk_too_big.yaml", {"topk_too_big.yaml:5)", "model.moe.selector.k = 5", "must be <= model.moe.n_experts = 4"}},
      {"dense_with_router.yaml",
       {"dense_with_router.yaml", "model.moe.scorer.type = router (default)", "model.moe.n_experts = 1",
        "a dense model has n_experts: 1 and scorer.type: none"}},
      {"none_with_experts.yaml",
       {"none_with_experts.yaml:5)", "model.moe.scorer.type = none", "model.moe.n_experts = 4",
        "a dense model has n_experts: 1 and scorer.type: none"}},
      {"seq_len.yaml", {"seq_len.yaml:3)", "data.seq_len = 256", "must be <= model.max_seq_len = 128"}},
      {"min_lr.yaml", {"min_lr.yaml:3)", "train.min_lr = 0.01", "must be <= train.lr = 0.003"}},
      {"warmup.yaml", {"warmup.yaml:3)", "train.warmup_steps = 200", "must be <= train.max_steps = 100"}},
      {"fp64_cuda.yaml",
       {"fp64_cuda.yaml:3)", "run.precision = fp64", "requires run.backend: cpu", "run.backend = cuda"}},
      // Experts, scorers, selectors, auxiliary losses (rules_moe.cpp).
      {"factorized_dlow.yaml",
       {"factorized_dlow.yaml:4)", "model.moe.expert.type = factorized",
        "needs 1 <= model.moe.expert.d_low < model.d_model", "model.moe.expert.d_low = 64",
        "model.d_model = 64 (" + base + ":7)"}},
      {"dwide_derived.yaml",
       {"the d_wide that AoE Eq. 5 derives from", "model.moe.d_ffn = 1", "model.moe.expert.d_low = 32",
        "is -12; it must be >= 1", "set model.moe.expert.d_wide"}},
      {"dlow_unused.yaml",
       {"dlow_unused.yaml:5)", "model.moe.expert.d_low = 32", "has no effect",
        "model.moe.expert.type = swiglu (default)", "set model.moe.expert.type: factorized"}},
      {"dwide_unused.yaml",
       {"model.moe.expert.d_wide = 100", "has no effect with model.moe.expert.type = swiglu", "remove d_wide"}},
      {"act_norm_swiglu.yaml",
       {"model.moe.scorer.type = act_norm", "model.moe.scorer.node = latent (default)",
        "needs model.moe.expert.type: factorized", "model.moe.expert.type = swiglu (default)"}},
      {"large_router_width.yaml",
       {"model.moe.scorer.type = large_router", "needs a hidden width", "model.moe.scorer.d_hidden = 0 (default)",
        "model.moe.expert.d_low = 0 (default)"}},
      {"dhidden_unused.yaml",
       {"model.moe.scorer.d_hidden = 128", "has no effect with model.moe.scorer.type = router",
        "set model.moe.scorer.type: large_router"}},
      {"activation_unused.yaml",
       {"model.moe.scorer.activation = linear", "has no effect with model.moe.scorer.type = router",
        "set model.moe.scorer.type: large_router"}},
      {"gate_not_topk.yaml",
       {"model.moe.selector.gate = softmax_all", "needs model.moe.selector.type: topk",
        "model.moe.selector.type = topp", "model.moe.selector.renormalize"}},
      {"topk_null_too_big.yaml",
       {"model.moe.selector.k = 7", "must be <= model.moe.n_experts = 4", "+ model.moe.selector.n_null = 2", "= 6"}},
      {"null_not_topk.yaml",
       {"model.moe.selector.n_null = 2", "needs model.moe.selector.type: topk", "model.moe.selector.type = topp"}},
      {"null_lb_without_null.yaml",
       {"model.moe.aux.null_load_balance = [[0, 0.02], [50, 0.0001]]", "needs null experts",
        "model.moe.selector.n_null = 0 (default)"}},
      {"null_with_load_balance.yaml",
       {"model.moe.aux.load_balance = 0.01 (default) must be 0 with", "model.moe.selector.n_null = 4",
        "null_load_balance"}},
      {"z_loss_act_norm.yaml",
       {"model.moe.aux.z_loss = 0.001", "needs a router scorer", "model.moe.scorer.type = act_norm"}},
      {"expert_choice_cf.yaml",
       {"model.moe.selector.type = expert_choice", "needs model.moe.selector.capacity_factor > 0",
        "model.moe.selector.capacity_factor = 0.0 (default)"}},
      {"expert_choice_capacity.yaml",
       {"model.moe.selector.capacity_factor = 0.01", "round(0.01 * 64 / 4) = 0 tokens",
        "model.moe.selector.group = sequence", "data.seq_len = 64", "it must be between 1 and 64",
        "a capacity_factor between 0.0625 and 4"}},
      {"topp_max_k.yaml", {"model.moe.selector.max_k = 5", "must be <= model.moe.n_experts = 4"}},
      {"bias_not_topk.yaml",
       {"model.moe.aux.bias_update_rate = 0.001", "needs model.moe.selector.type: topk",
        "model.moe.selector.type = expert_choice"}},
      {"topp_p_zero.yaml", {"topp_p_zero.yaml:4: model.moe.selector.p: 0 is out of range (valid: (0, 1])"}},
      // Schedules: the message names the pair (and its line) and what is wrong with it.
      {"schedule_order.yaml",
       {"schedule_order.yaml:8: model.moe.aux.load_balance: pair 3 [100, 0.001]: step 100 must "
        "be greater than the previous step 100"}},
      {"schedule_negative.yaml",
       {"schedule_negative.yaml:5: model.moe.aux.entropy: pair 2 [10, -1.0e-4]: the value "
        "-1.0e-4 is out of range (valid: >= 0)"}},
      {"schedule_first_step.yaml", {"model.moe.aux.load_balance: pair 1 [10, 0.01]: the first step must be 0"}},
      {"schedule_not_pair.yaml", {"model.moe.aux.load_balance: pair 2 '0.001': expected a [step, value] pair"}},
      {"schedule_step_float.yaml",
       {"model.moe.aux.load_balance: pair 2 [1.5e3, 0.001]: the step must be an integer, got "
        "'1.5e3'"}},
      {"syntax_error.yaml", {"syntax_error.yaml:4:", "YAML syntax error"}},
      {"extends_missing.yaml",
       {"extends_missing.yaml:2: extends: config file '", "no_such_base.yaml' not found",
        "relative to the directory of the file that names them"}},
      {"duplicate_key.yaml",
       {"duplicate_key.yaml:4: train.lr: duplicate key (first set at " + fixture("broken/duplicate_key.yaml") + ":3)"}},
      // A scalar replaces the whole inherited section, whose required keys are then missing.
      {"section_scalar.yaml",
       {"section_scalar.yaml:2: model: expected a section (a map of keys), got '5'",
        "missing required key model.d_model"}},
      {"many_errors.yaml",
       {"(3 problems)", "HINT: docs/configs.md lists every key",
        "many_errors.yaml:3: model.n_layers: 0 is out of range (valid: >= 1)",
        "many_errors.yaml:6: unknown key 'model.moe.scorer.typ'", "did you mean model.moe.scorer.type?",
        "many_errors.yaml:8: train.lr_schedule: expected one of cosine, linear, constant, got "
        "'cosin'"}},
  };
  for (const Broken& c : cases) {
    const std::string msg = error_of(fixture("broken/" + c.file));
    INFO(c.file << " gave:\n" << msg);
    CHECK_THAT(msg, Catch::Contains(fixture("broken/" + c.file)));
    for (const std::string& fragment : c.expected) CHECK_THAT(msg, Catch::Contains(fragment));
  }
}

TEST_CASE("a missing config file is a user error naming it", "[config]") {
  const std::string msg = error_of(fixture("no_such_config.yaml"));
  CHECK_THAT(msg, Catch::Contains("config file '" + fixture("no_such_config.yaml") + "' not found"));
}

TEST_CASE("cross-field rules wait until every key is valid on its own", "[config]") {
  // n_heads does not parse: the d_model % n_heads rule must not run on the field's initial 0
  // (a division by zero) nor add a second message.
  const std::string msg = error_of(fixture("base.yaml"), {"model.n_heads=four"});
  CHECK_THAT(msg, Catch::Contains("(1 problem)"));
  CHECK_THAT(msg, Catch::Contains("--set model.n_heads=four: model.n_heads: expected an integer"));
}
