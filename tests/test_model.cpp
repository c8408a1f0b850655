// Whole-model tests on the CPU reference: the gradient of the training loss (cross-entropy plus
// auxiliary losses) with respect to every parameter tensor against central finite differences in
// double precision, the parameter-count formula against the built table, and fp32 vs fp64.
#include "cpu/cpu_backend.h"
#include "model/model_info.h"
#include "model/transformer.h"
#include "support/gradcheck.h"

#include <catch2/catch.hpp>

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
  m.n_kv_heads = 1;  // grouped-query attention
  m.max_seq_len = 16;
  m.init_std = 0.3;  // large enough that router scores are well separated (stable top-k under eps)
  m.moe.n_experts = 4;
  m.moe.d_ffn = 6;
  m.moe.selector.k = 2;
  m.moe.aux.load_balance = 0.1;
  m.moe.aux.z_loss = 0.01;
  return m;
}

ModelConfig tiny_dense_tied() {
  ModelConfig m = tiny_moe();
  m.n_kv_heads = 0;
  m.tie_embeddings = true;
  m.moe.n_experts = 1;
  m.moe.scorer.type = "none";
  m.moe.selector.k = 1;
  m.moe.aux.load_balance = 0;
  m.moe.aux.z_loss = 0;
  return m;
}

struct Batch {
  std::vector<int32_t> tokens, targets;
};

Batch random_batch(int B, int T, int V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Batch b;
  for (int i = 0; i < B * T; ++i) {
    b.tokens.push_back(static_cast<int32_t>(rng() % V));
    b.targets.push_back(static_cast<int32_t>(rng() % V));
  }
  b.targets[3] = -1;  // an ignored target
  return b;
}

void check_model_gradients(const ModelConfig& cfg) {
  const int B = 2, T = 5;
  CpuBackend be(DType::F64, 1);
  Transformer model(be, cfg, B, T);
  model.store().init(7);
  const Batch batch = random_batch(B, T, cfg.vocab_size, 11);

  // The objective backward() differentiates: cross-entropy + aux losses (grad_scale 1).
  auto loss = [&]() {
    const LossParts lp = model.forward(batch.tokens.data(), batch.targets.data(), 1.0);
    return lp.ce + lp.aux;
  };
  model.store().zero_grads();
  const double l0 = loss();
  REQUIRE(std::isfinite(l0));
  model.backward();

  const ParamTable& table = model.store().table();
  for (int i = 0; i < table.size(); ++i) {
    Tensor p = model.store().value(i), g = model.store().grad(i);
    const std::vector<double> analytic(g.as<double>(), g.as<double>() + g.numel());
    test::GradcheckOptions opt;
    opt.what = table.at(i).name;
    opt.max_entries = 24;
    const test::GradcheckResult r = test::check_gradient(loss, p.as<double>(), analytic.data(), p.numel(), opt);
    INFO(table.at(i).name << ": worst relative error " << r.worst_rel << " at " << r.worst_index);
    CHECK(r.ok());
    CHECK(r.checked > 0);
  }
}

}  // namespace

TEST_CASE("whole model: every parameter gradient matches finite differences (MoE, GQA, aux losses)",
          "[model][gradcheck]") {
  check_model_gradients(tiny_moe());
}

TEST_CASE("whole model: every parameter gradient matches finite differences (dense, tied embeddings)",
          "[model][gradcheck]") {
  check_model_gradients(tiny_dense_tied());
}

// The ids are checked on the host before the upload (the CUDA ops read nothing back): both forward
// paths refuse a token outside [0, V) or a target >= V, naming it and its position.
TEST_CASE("the model checks token and target ids on the host, before uploading them", "[model]") {
  const ModelConfig m = tiny_moe();
  CpuBackend be(DType::F32, 1);
  Transformer model(be, m, 1, 4);
  model.store().init(1);
  TensorBuf acc(be, DType::F64, {1}), aux(be, DType::F64, {1});
  be.zero(acc);
  be.zero(aux);
  const int32_t V = m.vocab_size;
  std::vector<int32_t> tokens = {1, 2, 3, 4}, targets = {2, 3, 4, -1};
  CHECK_NOTHROW(model.forward(tokens.data(), targets.data(), 0.0));
  tokens[3] = V;
  CHECK_THROWS_WITH(model.forward(tokens.data(), targets.data(), 0.0),
                    Catch::Contains(fmt::format("token {} at position 3 is outside [0, {})", V, V)));
  tokens[3] = -2;
  CHECK_THROWS_WITH(model.forward_accumulate(tokens.data(), targets.data(), 1.0, 1, acc, aux),
                    Catch::Contains(fmt::format("token -2 at position 3 is outside [0, {})", V)));
  tokens[3] = 0;
  targets[1] = V + 5;
  CHECK_THROWS_WITH(model.forward_accumulate(tokens.data(), targets.data(), 1.0, 1, acc, aux),
                    Catch::Contains(fmt::format("target {} of row 1 is >= the vocabulary size {}", V + 5, V)));
  CHECK(download_as_double(be, acc).front() == 0.0);  // nothing was accumulated
  CHECK(download_as_double(be, aux).front() == 0.0);
}

TEST_CASE("parameter-count formula equals the table the model builds", "[model]") {
  for (ModelConfig m : {tiny_moe(), tiny_dense_tied()}) {
    CpuBackend be(DType::F32, 1);
    Transformer model(be, m, 1, 4);
    const ParamCounts c = count_params(m);
    CHECK(c.total == model.store().table().total());
    // active = total minus the (n - k) unselected experts of every layer; the embedding matrix
    // counts twice (input and LM head) even when tied
    const int64_t expert = 3LL * m.d_model * m.moe.d_ffn;
    const int64_t k = m.moe.scorer.type == "none" ? 1 : m.moe.selector.k;
    const int64_t tied_extra = m.tie_embeddings ? int64_t{m.vocab_size} * m.d_model : 0;
    CHECK(c.active == c.total - m.n_layers * (m.moe.n_experts - k) * expert + tied_extra);
  }
}

TEST_CASE("parameter-count formula equals the built table for every expert, scorer and selector", "[model]") {
  std::vector<std::function<void(MoeConfig&)>> variants = {
      [](MoeConfig& m) {
        m.expert.type = "factorized";
        m.expert.d_low = 3;
      },
      [](MoeConfig& m) {
        m.expert.type = "factorized";
        m.expert.d_low = 3;
        m.scorer.type = "act_norm";
        m.aux.z_loss = 0;
      },
      [](MoeConfig& m) {
        m.expert.type = "factorized";
        m.expert.d_low = 2;
        m.scorer.type = "act_norm";
        m.aux.z_loss = 0;
        m.selector.n_null = 3;
        m.selector.k = 3;
      },
      [](MoeConfig& m) {
        m.scorer.type = "large_router";
        m.scorer.d_hidden = 5;
        m.selector.n_null = 2;
      },
      [](MoeConfig& m) {
        m.scorer.type = "large_router";
        m.scorer.d_hidden = 1012;
        m.scorer.activation = "linear";
      },
      [](MoeConfig& m) {
        m.selector.n_null = 4;
        m.selector.k = 3;
      },
      [](MoeConfig& m) { m.aux.bias_update_rate = 1e-3; },  // a saved state, not a parameter
  };
  for (auto& set : variants) {
    ModelConfig m = tiny_moe();
    set(m.moe);
    CpuBackend be(DType::F32, 1);
    Transformer model(be, m, 1, 4);
    int64_t trainable = 0;
    for (const ParamSpec& s : model.store().table().specs()) trainable += s.trainable ? s.numel() : 0;
    CHECK(count_params(m).total == trainable);
  }
}

TEST_CASE("fp32 and fp64 models agree on the loss from the same initialisation", "[model]") {
  const ModelConfig m = tiny_moe();
  const Batch batch = random_batch(2, 5, m.vocab_size, 3);
  double loss[2];
  int i = 0;
  for (DType dt : {DType::F32, DType::F64}) {
    CpuBackend be(dt, 1);
    Transformer model(be, m, 2, 5);
    model.store().init(7);
    const LossParts lp = model.forward(batch.tokens.data(), batch.targets.data(), 0.0);
    loss[i++] = lp.ce + lp.aux;
  }
  CHECK(loss[0] == Approx(loss[1]).epsilon(1e-5));
}

TEST_CASE("initialisation is a pure function of (seed, name)", "[model]") {
  ParamSpec s;
  s.name = "model.layers.0.self_attn.q_proj.weight";
  s.shape = {4, 3};
  s.std = 0.02;
  std::vector<double> a(12), b(12), c(12);
  init_param_host(s, 5, a.data());
  init_param_host(s, 5, b.data());
  CHECK(a == b);
  init_param_host(s, 6, c.data());
  CHECK(a != c);
  s.name = "model.layers.1.self_attn.q_proj.weight";
  init_param_host(s, 5, c.data());
  CHECK(a != c);
  // a sample of 12 N(0, 0.02) values: all finite, not all equal, none absurdly large
  for (double x : a) CHECK(std::abs(x) < 0.2);
}
