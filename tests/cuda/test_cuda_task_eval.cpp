// Multiple-choice scoring (train/task_eval.h: score_requests) on the GPU against the CPU reference:
// the summed continuation log-likelihoods of requests of various lengths, three per forward pass
// (the last pass partial), for token-choice strategies (expert choice is refused for scoring).
// Tolerances: fp32 1e-5 relative (per-token cross-entropies summed over a few tokens, other
// summation orders); bf16 against the CPU's bf16 emulation 1e-2 relative (an activation can round
// to the neighbouring bf16 value). Two GPU runs give the same bits.
#include "cuda_test_util.h"
#include "model/transformer.h"
#include "small_moe_config.h"
#include "train/task_eval.h"

#include <catch2/catch.hpp>

#include <functional>
#include <random>

using namespace am;
using namespace am::test;

namespace {

ModelConfig scoring_model() { return small_moe_config(16); }

// Requests of 2 to T + 1 tokens with continuations of 1 to 5 tokens.
std::vector<ScoreRequest> random_requests(int n, int T, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<ScoreRequest> out;
  for (int i = 0; i < n; ++i) {
    ScoreRequest r;
    const int len = 2 + static_cast<int>(rng() % static_cast<uint64_t>(T));
    for (int j = 0; j < len; ++j) r.tokens.push_back(static_cast<int32_t>(rng() % 50));
    r.n_cont = 1 + static_cast<int>(rng() % static_cast<uint64_t>(std::min(5, len - 1)));
    out.push_back(std::move(r));
  }
  return out;
}

void compare_scores(bool bf16, double rtol) {
  const int B = 3, T = 16;
  const std::vector<ScoreRequest> reqs = random_requests(7, T, 11);
  const std::vector<std::pair<std::string, std::function<void(MoeConfig&)>>> strategies = {
      {"router top-k", [](MoeConfig&) {}},
      {"top-p", [](MoeConfig& m) { m.selector.type = "topp"; }},
      {"null experts",
       [](MoeConfig& m) {
         m.selector.n_null = 2;
         m.selector.k = 3;
       }},
      {"aoe l2",
       [](MoeConfig& m) {
         m.expert.type = "factorized";
         m.expert.d_low = 8;
         m.scorer.type = "act_norm";
       }},
  };
  for (const auto& [name, set] : strategies) {
    DYNAMIC_SECTION(name) {
      ModelConfig m = scoring_model();
      set(m.moe);
      Pair p(bf16);
      Transformer gpu(*p.gpu, m, B, T), cpu(*p.cpu, m, B, T);
      gpu.store().init(3);
      cpu.store().init(3);
      const std::vector<double> lg = score_requests(gpu, reqs), lc = score_requests(cpu, reqs);
      REQUIRE(lg.size() == reqs.size());
      for (size_t i = 0; i < reqs.size(); ++i) {
        INFO(name << ": request " << i << " (" << reqs[i].tokens.size() << " tokens, " << reqs[i].n_cont << " scored)");
        CHECK(lc[i] < 0);
        CHECK(lg[i] == Approx(lc[i]).epsilon(rtol));
      }
      CHECK(score_requests(gpu, reqs) == lg);
    }
  }
}

}  // namespace

TEST_CASE("cuda task scoring: continuation log-likelihoods match the CPU", "[cuda][task]") {
  compare_scores(/*bf16=*/false, 1e-5);
}

TEST_CASE("cuda task scoring in bf16: log-likelihoods match the CPU's bf16 emulation", "[cuda][task][bf16]") {
  compare_scores(/*bf16=*/true, 1e-2);
}
