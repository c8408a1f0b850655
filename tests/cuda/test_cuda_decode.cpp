// Incremental decoding with a KV cache (model/decode.h) on the GPU against the CPU reference: the
// logits of every position of a 12-token sequence, for token-choice strategies (expert choice is
// refused for generation), and the GPU decoder against the GPU's own full forward. Tolerances:
// fp32 |gpu - cpu| <= 1e-4 + 1e-4 |cpu| on logits of order 1 (other summation orders in the
// matmuls and attention); bf16 against the CPU's bf16 emulation 2e-2 + 2e-2 |cpu| (an activation
// can round to the neighbouring bf16 value).
#include "cuda_test_util.h"
#include "model/decode.h"
#include "model/transformer.h"
#include "params/params.h"
#include "small_moe_config.h"

#include <catch2/catch.hpp>

#include <functional>
#include <random>

using namespace am;
using namespace am::test;

namespace {

ModelConfig decode_model() { return small_moe_config(16); }

std::vector<float> to_floats(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

void compare_decode(bool bf16, double tol) {
  const int T = 12;
  const std::vector<int32_t> tokens = random_ids(T, 0, 50, 17), targets(T, -1);
  const std::vector<std::pair<std::string, std::function<void(MoeConfig&)>>> strategies = {
      {"router top-k", [](MoeConfig&) {}},
      {"top-p", [](MoeConfig& m) { m.selector.type = "topp"; }},
      {"dense",
       [](MoeConfig& m) {
         m.n_experts = 1;
         m.scorer.type = "none";
         m.selector.k = 1;
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
      ModelConfig m = decode_model();
      set(m.moe);
      Pair p(bf16);
      Transformer gpu(*p.gpu, m, 1, 1), cpu(*p.cpu, m, 1, 1), gpu_full(*p.gpu, m, 1, T);
      gpu.store().init(3);
      cpu.store().init(3);
      gpu_full.store().init(3);
      gpu_full.forward(tokens.data(), targets.data(), 0.0);
      const std::vector<double> full = download_as_double(*p.gpu, gpu_full.logits());
      Decoder dg(gpu, T), dc(cpu, T);
      for (int pos = 0; pos < T; ++pos) {
        INFO(name << ": position " << pos);
        const std::vector<double> lg = dg.step(tokens[pos]), lc = dc.step(tokens[pos]);
        require_close(to_floats(lg), to_floats(lc), tol, tol);
        const std::vector<double> lf(full.begin() + pos * m.vocab_size, full.begin() + (pos + 1) * m.vocab_size);
        require_close(to_floats(lg), to_floats(lf), tol, tol);
      }
    }
  }
}

}  // namespace

TEST_CASE("decode: KV-cache logits on the GPU match the CPU and the GPU's full forward (fp32)", "[decode]") {
  compare_decode(false, 1e-4);
}

TEST_CASE("decode: KV-cache logits on the GPU match the CPU and the GPU's full forward (bf16 matmuls)", "[decode]") {
  compare_decode(true, 2e-2);
}
