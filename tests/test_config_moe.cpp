// MoE selection keys: schedules (evaluation, parsing, round trip), AoE Eq. 5 expert widths,
// expert-choice capacity, and valid configs of every scorer / selector kind.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/schema.h"
#include "core/error.h"
#include "support/resolved_key.h"

using namespace am;

namespace {

using Points = std::vector<std::pair<int64_t, double>>;

std::string fixture(const std::string& rel) { return std::string(AM_SOURCE_DIR) + "/tests/data/configs/" + rel; }

std::string error_of(const std::vector<std::string>& overrides) {
  try {
    load_config(fixture("base.yaml"), overrides);
  } catch (const UserError& e) {
    return e.what();
  }
  FAIL("expected a UserError for the overrides");
  return "";
}

using test::resolved;

MoeConfig factorized(int d_ffn, int d_low) {
  MoeConfig m;
  m.d_ffn = d_ffn;
  m.expert.type = "factorized";
  m.expert.d_low = d_low;
  return m;
}

}  // namespace

TEST_CASE("Schedule: piecewise constant in the step, active when some value is > 0", "[config]") {
  Schedule s;
  s.points = {{0, 0.02}, {100, 1e-4}, {250, 0.0}};
  CHECK(s.at(0) == 0.02);
  CHECK(s.at(99) == 0.02);
  CHECK(s.at(100) == 1e-4);
  CHECK(s.at(249) == 1e-4);
  CHECK(s.at(250) == 0.0);
  CHECK(s.at(int64_t(1) << 40) == 0.0);
  CHECK(s.at(-5) == 0.02);  // before step 0: the first value
  CHECK(s.active());

  CHECK(Schedule(0.5).at(123456) == 0.5);
  CHECK_FALSE(Schedule(0.0).active());
  CHECK_FALSE(Schedule().active());
  Schedule late;
  late.points = {{0, 0.0}, {10, 0.3}};
  CHECK(late.active());  // switched on later still counts
  CHECK(late.at(9) == 0.0);
  CHECK(late.at(10) == 0.3);
}

TEST_CASE("schedules load as numbers or [step, value] lists, block or flow, file or --set", "[config]") {
  const Config cfg =
      load_config(fixture("base.yaml"), {"model.moe.aux.entropy=[[0, 1.0e-3], [10, 1.0e-4], [1000, 0]]",
                                         "model.moe.aux.z_loss=[[0, 0.001]]", "model.moe.aux.load_balance=0"});
  CHECK(cfg.model.moe.aux.entropy.points == Points{{0, 1e-3}, {10, 1e-4}, {1000, 0.0}});
  CHECK(cfg.model.moe.aux.z_loss == Schedule(0.001));  // a one-pair list is a constant
  CHECK(resolved(cfg, "model.moe.aux.z_loss").value == "0.001");
  CHECK(resolved(cfg, "model.moe.aux.entropy").value == "[[0, 0.001], [10, 0.0001], [1000, 0.0]]");
  CHECK(resolved(cfg, "model.moe.aux.entropy").source == "--set");
  CHECK_FALSE(cfg.model.moe.aux.load_balance.active());

  // The block form in a file (an AdaMoE-style annealed coefficient).
  const Config nulls = load_config(fixture("null_experts.yaml"));
  CHECK(nulls.model.moe.aux.null_load_balance.points == Points{{0, 0.02}, {60, 1e-4}});
  CHECK(resolved(nulls, "model.moe.aux.null_load_balance").source == fixture("null_experts.yaml") + ":10");
}

TEST_CASE("schedule errors name the key, the pair and what is wrong", "[config]") {
  struct Case {
    std::string set, expected;
  };
  const std::vector<Case> cases = {
      {"model.moe.aux.entropy=[]",
       "model.moe.aux.entropy: expected a number or a list of [step, "
       "value] pairs, got an empty list"},
      {"model.moe.aux.entropy={0: 1}",
       "model.moe.aux.entropy: expected a number or a list of [step, value] pairs, got a map"},
      {"model.moe.aux.entropy=abc",
       "model.moe.aux.entropy: expected a number or a list of [step, value] pairs, got 'abc'"},
      {"model.moe.aux.entropy=-1", "model.moe.aux.entropy: -1 is out of range (valid: >= 0)"},
      {"model.moe.aux.entropy=[[0]]", "pair 1 [0]: expected a [step, value] pair"},
      {"model.moe.aux.entropy=[[0, 1, 2]]", "pair 1 [0, 1, 2]: expected a [step, value] pair"},
      {"model.moe.aux.entropy=[[0, \"0.1\"]]",
       "pair 1 [0, the quoted string \"0.1\"]: the value must be a number, got the quoted string"},
      {"model.moe.aux.entropy=[[0, 0.1], [5, x]]", "pair 2 [5, x]: the value must be a number, got 'x'"},
      {"model.moe.aux.entropy=[[0, 0.1], [-5, 0.2]]",
       "pair 2 [-5, 0.2]: step -5 must be greater than the previous step 0"},
      {"model.moe.aux.entropy=[[0, 0.1], [[5], 0.2]]",
       "pair 2 [a sequence, 0.2]: the step must be an integer, got a sequence"},
  };
  for (const Case& c : cases) {
    const std::string msg = error_of({c.set});
    INFO(c.set << " gave:\n" << msg);
    CHECK_THAT(msg, Catch::Contains("--set " + c.set));
    CHECK_THAT(msg, Catch::Contains(c.expected));
  }
}

TEST_CASE("hidden_width: d_ffn for swiglu, d_wide when given, AoE Eq. 5 otherwise", "[config]") {
  // The AoE paper's values for d = 768, d_ffn = 3072 (Section 4, Table 2).
  CHECK(factorized(3072, 64).hidden_width(768) == 4393);   // 4392.96
  CHECK(factorized(3072, 128).hidden_width(768) == 4194);  // 4194.46
  CHECK(factorized(3072, 256).hidden_width(768) == 3840);  // exact
  CHECK(factorized(3072, 512).hidden_width(768) == 3264);  // exact
  // 4B model (Table 5): d = 1280, d_ffn = 5120, d_low = 400. Eq. 5 gives 6469.19; the paper's
  // 6470 is what rounding to an even width (or a multiple of 10) gives.
  MoeConfig big = factorized(5120, 400);
  CHECK(big.hidden_width(1280) == 6469);
  big.expert.multiple_of = 2;
  CHECK(big.hidden_width(1280) == 6470);
  big.expert.multiple_of = 10;
  CHECK(big.hidden_width(1280) == 6470);
  MoeConfig m64 = factorized(3072, 64);
  m64.expert.multiple_of = 64;
  CHECK(m64.hidden_width(768) == 4416);  // 4393 / 64 = 68.6 -> 69 * 64
  m64.expert.d_wide = 1000;
  CHECK(m64.hidden_width(768) == 1000);  // given: no derivation, no rounding

  MoeConfig swiglu;
  swiglu.d_ffn = 3072;
  swiglu.expert.d_wide = 5;  // ignored by swiglu experts (the validator rejects it in a config)
  CHECK(swiglu.hidden_width(768) == 3072);

  // Eq. 5 matches parameters: d d_low + d_low w + 2 d w is within one column of 3 d d_ffn.
  for (int d_low : {64, 128, 256, 512}) {
    const int64_t d = 768, w = factorized(3072, d_low).hidden_width(768);
    const int64_t aoe = d * d_low + d_low * w + 2 * d * w, moe = 3 * d * 3072;
    INFO("d_low " << d_low << " w " << w);
    CHECK(std::llabs(aoe - moe) <= (d_low + 2 * d) / 2);
  }
}

TEST_CASE("expert_choice_capacity: round(CF * group tokens / n_experts)", "[config]") {
  MoeConfig m;
  m.n_experts = 8;
  m.selector.capacity_factor = 2;
  CHECK(expert_choice_capacity(m, 2048 * 8) == 4096);  // CF 2 of 8 experts: a quarter each
  m.n_experts = 3;
  m.selector.capacity_factor = 1;
  CHECK(expert_choice_capacity(m, 10) == 3);  // 3.33
  m.n_experts = 4;
  CHECK(expert_choice_capacity(m, 2) == 1);  // 0.5: halves round up
  m.selector.capacity_factor = 0.25;
  CHECK(expert_choice_capacity(m, 10) == 1);  // 0.625
  m.selector.capacity_factor = 0.1;
  CHECK(expert_choice_capacity(m, 10) == 0);  // 0.25: the validator rejects this
}

TEST_CASE("every scorer, selector and expert kind has a valid config", "[config]") {
  const std::vector<std::vector<std::string>> valid = {
      {"model.moe.expert={type: factorized, d_low: 16}"},  // factorized W_g with a router
      {"model.moe.expert={type: factorized, d_low: 16, d_wide: 100}"},
      {"model.moe.scorer.type=large_router", "model.moe.expert.d_low=16"},  // h = 4 * 16
      {"model.moe.scorer={type: large_router, d_hidden: 48}", "model.moe.aux.z_loss=0.001"},
      // The AoE authors' releases: the linear BigRouter, and the megablocks gates.
      {"model.moe.scorer={type: large_router, d_hidden: 1012, activation: linear}"},
      {"model.moe.expert={type: factorized, d_low: 16}", "model.moe.scorer.type=act_norm",
       "model.moe.selector={k: 2, gate: softmax_all}"},
      {"model.moe.selector={k: 3, n_null: 2, gate: softmax_all, capacity_factor: 1.5}",
       "model.moe.aux={load_balance: 0, null_load_balance: 0.02}"},
      {"model.moe.expert={type: factorized, d_low: 16}", "model.moe.scorer.type=act_norm"},
      {"model.moe.expert={type: factorized, d_low: 16}",
       "model.moe.scorer={type: act_norm, "
       "norm: l1}"},
      // Other nodes are evaluation-only but valid in a config (the trainer refuses them).
      {"model.moe.scorer={type: act_norm, node: glu}"},
      {"model.moe.selector={type: topp, p: 0.6, max_k: 4}", "model.moe.aux.entropy=1e-4"},
      {"model.moe.selector={type: topp, p: 1}"},
      {"model.moe.selector={type: expert_choice, capacity_factor: 2}", "model.moe.aux.load_balance=0"},
      {"model.moe.selector={type: expert_choice, capacity_factor: 2, group: sequence}"},
      // Null experts: k may exceed n_experts up to n_experts + n_null.
      {"model.moe.selector={k: 6, n_null: 2}",
       "model.moe.aux={load_balance: 0, "
       "null_load_balance: [[0, 0.02], [50, 1e-4]]}"},
      {"model.moe.expert={type: factorized, d_low: 16}", "model.moe.scorer.type=act_norm",
       "model.moe.selector={k: 3, n_null: 4}", "model.moe.aux.load_balance=0"},
      {"model.moe.aux={load_balance: 0, bias_update_rate: 0.001}"},
      // A dense model ignores the selector and the auxiliary losses.
      {"model.moe={n_experts: 1, scorer: {type: none}}",
       "model.moe.selector={type: topp, max_k: 9, n_null: 3, gate: softmax_all}",
       "model.moe.aux={null_load_balance: 0.1, z_loss: 0.1, bias_update_rate: 0.1}"},
  };
  for (const auto& sets : valid) {
    INFO(Catch::Detail::stringify(sets));
    CHECK_NOTHROW(load_config(fixture("base.yaml"), sets));
  }
}

TEST_CASE("expert_choice capacity depends on the group: batch or sequence", "[config]") {
  // base.yaml: 4 experts, micro_batch_size 4, seq_len 64. CF 0.04: batch group 256 tokens ->
  // round(2.56) = 3 per expert; sequence group 64 tokens -> round(0.64) = 1; CF 0.02 -> 0.32 -> 0.
  const std::string ec = "model.moe.selector={type: expert_choice, capacity_factor: 0.04}";
  CHECK_NOTHROW(load_config(fixture("base.yaml"), {ec}));
  CHECK_NOTHROW(load_config(fixture("base.yaml"), {ec, "model.moe.selector.group=sequence"}));
  const std::string msg =
      error_of({ec, "model.moe.selector.group=sequence", "model.moe.selector.capacity_factor=0.02"});
  CHECK_THAT(msg, Catch::Contains("round(0.02 * 64 / 4) = 0 tokens"));
  CHECK_NOTHROW(load_config(fixture("base.yaml"), {ec, "model.moe.selector.capacity_factor=0.02"}));
  // Too large: more tokens per expert than the group holds.
  const std::string big = error_of({ec, "model.moe.selector.capacity_factor=5"});
  CHECK_THAT(big, Catch::Contains("round(5 * 256 / 4) = 320 tokens of a group of 256"));
  CHECK_THAT(big, Catch::Contains("train.micro_batch_size = 4"));
}
