// Incremental decoding with a KV cache (model/decode.h) against the full forward pass, and the
// next-token sampler (model/sampler.h): greedy, seeded draws, the top-k and top-p filters.
#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "model/decode.h"
#include "model/sampler.h"
#include "model/transformer.h"
#include "params/params.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

using namespace am;

namespace {

ModelConfig tiny_moe() {
  ModelConfig m;
  m.vocab_size = 13;
  m.d_model = 8;
  m.n_layers = 2;
  m.n_heads = 2;
  m.n_kv_heads = 1;  // grouped-query attention: the cache holds fewer k/v heads than q heads
  m.max_seq_len = 16;
  m.init_std = 0.3;
  m.moe.n_experts = 4;
  m.moe.d_ffn = 6;
  m.moe.selector.k = 2;
  return m;
}

ModelConfig tiny_dense() {
  ModelConfig m = tiny_moe();
  m.n_kv_heads = 0;
  m.tie_embeddings = true;
  m.moe.n_experts = 1;
  m.moe.scorer.type = "none";
  m.moe.selector.k = 1;
  return m;
}

ModelConfig tiny_aoe() {
  ModelConfig m = tiny_moe();
  m.moe.expert.type = "factorized";
  m.moe.expert.d_low = 3;
  m.moe.expert.d_wide = 5;
  m.moe.scorer.type = "act_norm";
  m.moe.scorer.node = "latent";
  m.moe.scorer.norm = "l2";
  return m;
}

ModelConfig tiny_topp() {
  ModelConfig m = tiny_moe();
  m.moe.selector.type = "topp";
  m.moe.selector.p = 0.6;
  return m;
}

std::vector<int32_t> random_tokens(int n, int V, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(rng() % static_cast<unsigned>(V)));
  return t;
}

// The decoder's logits at every position of a sequence of T tokens against the full forward's
// (T, V) logits, in double precision.
void check_decode_matches_forward(const ModelConfig& cfg) {
  const int T = 11, V = static_cast<int>(cfg.vocab_size);
  CpuBackend be(DType::F64, 1);
  Transformer full(be, cfg, 1, T);
  full.store().init(7);
  const std::vector<int32_t> tokens = random_tokens(T, V, 5), targets(T, -1);
  full.forward(tokens.data(), targets.data(), 0.0);
  const std::vector<double> want = download_as_double(be, full.logits());

  Transformer one(be, cfg, 1, 1);
  be.copy(one.store().all_values(), full.store().all_values());
  Decoder dec(one, T);
  for (int round = 0; round < 2; ++round) {  // the second pass overwrites the cache of the first
    dec.reset();
    double worst = 0;
    for (int p = 0; p < T; ++p) {
      const std::vector<double> got = dec.step(tokens[p]);
      REQUIRE(got.size() == static_cast<size_t>(V));
      for (int v = 0; v < V; ++v) worst = std::max(worst, std::abs(got[v] - want[static_cast<size_t>(p * V + v)]));
    }
    INFO("round " << round << ": worst |decode - forward| " << worst);
    CHECK(worst < 1e-10);
    CHECK(dec.position() == T);
  }
  // A wrong position would show: the logits of a token depend on where it stands.
  dec.reset();
  dec.step(tokens[1]);
  const std::vector<double> first = dec.step(tokens[1]);
  double diff = 0;
  for (int v = 0; v < V; ++v) diff = std::max(diff, std::abs(first[v] - want[static_cast<size_t>(V + v)]));
  CHECK(diff > 1e-6);
}

}  // namespace

TEST_CASE("decode: KV-cache logits equal the full forward at every position (top-k MoE, GQA)", "[decode]") {
  check_decode_matches_forward(tiny_moe());
}

TEST_CASE("decode: KV-cache logits equal the full forward at every position (dense, tied)", "[decode]") {
  check_decode_matches_forward(tiny_dense());
}

TEST_CASE("decode: KV-cache logits equal the full forward at every position (AoE: factorized, act_norm)", "[decode]") {
  check_decode_matches_forward(tiny_aoe());
}

TEST_CASE("decode: KV-cache logits equal the full forward at every position (top-p MoE)", "[decode]") {
  check_decode_matches_forward(tiny_topp());
}

TEST_CASE("decode: expert-choice selection is refused, naming the key", "[decode]") {
  ModelConfig m = tiny_moe();
  m.moe.selector.type = "expert_choice";
  try {
    check_decode_supported(m);
    FAIL("expert choice accepted");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()).find("model.moe.selector.type") != std::string::npos);
  }
  CHECK_NOTHROW(check_decode_supported(tiny_moe()));
  CHECK_NOTHROW(check_decode_supported(tiny_dense()));
}

TEST_CASE("sampler: greedy picks the argmax, the lowest id on ties", "[decode][sampler]") {
  SampleOptions o;
  o.temperature = 0;
  std::mt19937_64 rng(1);
  CHECK(sample_token({0.1, 2.0, -1.0, 1.9}, o, rng) == 1);
  CHECK(sample_token({3.0, 1.0, 3.0}, o, rng) == 0);
}

TEST_CASE("sampler: top-k and top-p filters on a hand-made distribution", "[decode][sampler]") {
  // probabilities 0.4, 0.1, 0.3, 0.2 (logits = log p, temperature 1)
  const std::vector<double> logits{std::log(0.4), std::log(0.1), std::log(0.3), std::log(0.2)};
  SampleOptions o;
  auto near = [](const std::vector<double>& a, const std::vector<double>& b) {
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::abs(a[i] - b[i]) > 1e-12) return false;
    }
    return a.size() == b.size();
  };
  CHECK(near(sample_distribution(logits, o), {0.4, 0.1, 0.3, 0.2}));
  o.top_k = 2;
  CHECK(near(sample_distribution(logits, o), {0.4 / 0.7, 0, 0.3 / 0.7, 0}));
  o.top_k = 0;
  o.top_p = 0.65;  // 0.4 < 0.65 <= 0.4 + 0.3
  CHECK(near(sample_distribution(logits, o), {0.4 / 0.7, 0, 0.3 / 0.7, 0}));
  o.top_p = 0.75;  // needs the third token
  CHECK(near(sample_distribution(logits, o), {0.4 / 0.9, 0, 0.3 / 0.9, 0.2 / 0.9}));
  o.top_p = 0.3;  // the most probable token alone
  CHECK(near(sample_distribution(logits, o), {1, 0, 0, 0}));
  o.top_p = 0.9;
  o.top_k = 2;  // top-k first, then top-p of what is left: 0.4/0.7 < 0.9
  CHECK(near(sample_distribution(logits, o), {0.4 / 0.7, 0, 0.3 / 0.7, 0}));
  // temperature 2: p ~ sqrt(p0)
  o = SampleOptions{};
  o.temperature = 2;
  const double z = std::sqrt(0.4) + std::sqrt(0.1) + std::sqrt(0.3) + std::sqrt(0.2);
  CHECK(near(sample_distribution(logits, o),
             {std::sqrt(0.4) / z, std::sqrt(0.1) / z, std::sqrt(0.3) / z, std::sqrt(0.2) / z}));
}

TEST_CASE("sampler: draws follow the distribution, never a filtered token, and repeat for a seed",
          "[decode][sampler]") {
  const std::vector<double> logits{std::log(0.4), std::log(0.1), std::log(0.3), std::log(0.2)};
  SampleOptions o;
  o.top_k = 3;  // token 1 filtered
  std::mt19937_64 a(42), b(42), c(43);
  std::vector<int> count(4, 0);
  std::vector<int32_t> sa, sb, sc;
  for (int i = 0; i < 9000; ++i) {
    sa.push_back(sample_token(logits, o, a));
    sb.push_back(sample_token(logits, o, b));
    sc.push_back(sample_token(logits, o, c));
    ++count[static_cast<size_t>(sa.back())];
  }
  CHECK(sa == sb);
  CHECK(sa != sc);
  CHECK(count[1] == 0);
  CHECK(std::abs(count[0] / 9000.0 - 4.0 / 9) < 0.02);
  CHECK(std::abs(count[2] / 9000.0 - 3.0 / 9) < 0.02);
  CHECK(std::abs(count[3] / 9000.0 - 2.0 / 9) < 0.02);
}

TEST_CASE("sampler: generate is deterministic for a seed and stops at the stop token or a full cache",
          "[decode][sampler]") {
  const ModelConfig cfg = tiny_moe();
  CpuBackend be(DType::F64, 1);
  Transformer one(be, cfg, 1, 1);
  one.store().init(3);
  Decoder dec(one, 12);
  SampleOptions o;
  o.seed = 9;
  const std::vector<int32_t> prompt{0, 4, 7};
  const std::vector<int32_t> x = generate(dec, prompt, 5, -1, o), y = generate(dec, prompt, 5, -1, o);
  CHECK(x.size() == 5);
  CHECK(x == y);
  o.seed = 10;
  std::vector<int32_t> z = generate(dec, prompt, 9, -1, o);
  CHECK(z.size() == 9);
  o.seed = 9;
  CHECK(std::vector<int32_t>(z.begin(), z.begin() + 5) != x);
  // the cache holds 12 positions: 3 prompt tokens and 9 sampled ones are read, and the 10th sampled
  // token is predicted from the last position
  CHECK(generate(dec, prompt, 20, -1, o).size() == 10);
  CHECK(dec.position() == 12);
  const std::vector<int32_t> stopped = generate(dec, prompt, 5, x[1], o);  // stops at x[1]'s first draw
  CHECK(stopped == std::vector<int32_t>(x.begin(), std::find(x.begin(), x.end(), x[1]) + 1));
  // greedy: each token the argmax of the decoder's logits after the tokens before it
  o.temperature = 0;
  const std::vector<int32_t> g = generate(dec, prompt, 4, -1, o);
  dec.reset();
  std::vector<double> logits;
  for (int32_t t : prompt) logits = dec.step(t);
  for (int32_t t : g) {
    CHECK(t == std::max_element(logits.begin(), logits.end()) - logits.begin());
    logits = dec.step(t);
  }
}

TEST_CASE("sampler: out-of-range options are refused, naming the flag", "[decode][sampler]") {
  auto refused = [](const std::function<void(SampleOptions&)>& f, const char* flag) {
    SampleOptions o;
    f(o);
    try {
      check_sample_options(o);
    } catch (const UserError& e) {
      return std::string(e.what()).find(flag) != std::string::npos;
    }
    return false;
  };
  CHECK(refused([](SampleOptions& o) { o.temperature = -0.5; }, "--temperature"));
  CHECK(refused([](SampleOptions& o) { o.temperature = NAN; }, "--temperature"));
  CHECK(refused([](SampleOptions& o) { o.top_p = 0; }, "--top-p"));
  CHECK(refused([](SampleOptions& o) { o.top_p = 1.5; }, "--top-p"));
  CHECK(refused([](SampleOptions& o) { o.top_k = -1; }, "--top-k"));
  SampleOptions ok;
  ok.temperature = 0;
  ok.top_p = 1;
  CHECK_NOTHROW(check_sample_options(ok));
}
