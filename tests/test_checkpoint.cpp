// Checkpoint contents: export names and shapes (HF Mixtral convention), save/load round trips,
// dtype conversion on load, bf16 export, and refusal of a checkpoint written for another model.
#include "cpu/cpu_backend.h"
#include "io/safetensors.h"
#include "model/model_info.h"
#include "model/transformer.h"
#include "support/synthetic_run.h"
#include "train/checkpoint.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

using namespace am;

namespace {

Config small_config(const test::TempDir& dir) {
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  return load_config(yaml, {"run.name=ck"});
}

std::vector<double> all_values(Transformer& m) { return download_as_double(m.backend(), m.store().all_values()); }

}  // namespace

TEST_CASE("parameters carry the HF Mixtral export names and [out, in] shapes", "[checkpoint]") {
  test::TempDir dir("names");
  const Config cfg = small_config(dir);
  CpuBackend be(DType::F32, 1);
  Transformer model(be, cfg.model, 1, 4);
  const ParamTable& t = model.store().table();
  const int64_t d = 16, f = 24, n = 4, V = 32;
  auto shape = [&](const std::string& name) { return t.at(t.index(name)).shape; };
  CHECK(shape("model.embed_tokens.weight") == std::vector<int64_t>{V, d});
  CHECK(shape("model.layers.0.input_layernorm.weight") == std::vector<int64_t>{d});
  CHECK(shape("model.layers.1.self_attn.q_proj.weight") == std::vector<int64_t>{d, d});
  CHECK(shape("model.layers.1.self_attn.o_proj.weight") == std::vector<int64_t>{d, d});
  CHECK(shape("model.layers.0.post_attention_layernorm.weight") == std::vector<int64_t>{d});
  CHECK(shape("model.layers.1.block_sparse_moe.gate.weight") == std::vector<int64_t>{n, d});
  CHECK(shape("model.layers.0.block_sparse_moe.experts.3.w1.weight") == std::vector<int64_t>{f, d});
  CHECK(shape("model.layers.0.block_sparse_moe.experts.3.w3.weight") == std::vector<int64_t>{f, d});
  CHECK(shape("model.layers.0.block_sparse_moe.experts.3.w2.weight") == std::vector<int64_t>{d, f});
  CHECK(shape("model.norm.weight") == std::vector<int64_t>{d});
  CHECK(shape("lm_head.weight") == std::vector<int64_t>{V, d});
  CHECK(t.size() == 1 + 2 * (2 + 4 + 1 + 3 * 4) + 1 + 1);
}

TEST_CASE("a checkpoint loads back exactly, and F64 weights convert into an F32 model", "[checkpoint]") {
  test::TempDir dir("roundtrip");
  Config cfg = small_config(dir);
  CpuBackend be64(DType::F64, 1);
  Transformer m64(be64, cfg.model, 1, 4);
  m64.store().init(3);
  TrainerState st;
  st.step = 5;
  st.tokens = 123;
  st.train_loader = {{"epoch", 0}, {"cursor", 7}};
  const std::string ckpt = save_checkpoint(dir / "ckpts", cfg, m64.store(), nullptr, st);

  // same dtype: identical bits
  Transformer again(be64, cfg.model, 1, 4);
  const TrainerState back = load_checkpoint(ckpt, again.store(), nullptr);
  CHECK(back.step == 5);
  CHECK(back.tokens == 123);
  CHECK(back.train_loader == st.train_loader);
  CHECK(all_values(again) == all_values(m64));

  // F64 -> F32: each value rounded to float
  CpuBackend be32(DType::F32, 1);
  Transformer m32(be32, cfg.model, 1, 4);
  load_checkpoint(ckpt, m32.store(), nullptr);
  const auto a = all_values(m64), b = all_values(m32);
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(b[i] == static_cast<double>(static_cast<float>(a[i])));

  // weights-only checkpoints cannot resume training
  AdamW opt(again.store(), cfg.train);
  CHECK_THROWS_WITH(load_checkpoint(ckpt, again.store(), &opt), Catch::Contains("weights only"));

  // a model with another shape refuses it, naming the tensor
  cfg.model.moe.d_ffn = 32;
  Transformer other(be64, cfg.model, 1, 4);
  CHECK_THROWS_WITH(load_checkpoint(ckpt, other.store(), nullptr), Catch::Contains("experts.0.w1.weight"));
  // a model with fewer experts refuses the extra tensors
  cfg.model.moe.d_ffn = 24;
  cfg.model.moe.n_experts = 3;
  Transformer fewer(be64, cfg.model, 1, 4);
  CHECK_THROWS_WITH(load_checkpoint(ckpt, fewer.store(), nullptr),
                    Catch::Contains("experts.3") && Catch::Contains("does not have"));
}

TEST_CASE("export writes bf16 safetensors and a Mixtral config.json", "[checkpoint]") {
  test::TempDir dir("export");
  const Config cfg = small_config(dir);
  CpuBackend be(DType::F32, 1);
  Transformer model(be, cfg.model, 1, 4);
  model.store().init(9);
  export_weights(dir / "out", cfg, model.store(), "bfloat16");

  SafetensorsFile f(dir / "out/model.safetensors");
  const ParamTable& t = model.store().table();
  REQUIRE(static_cast<int>(f.names().size()) == t.size());
  const std::vector<double> values = all_values(model);
  for (const ParamSpec& s : t.specs()) {
    const StInfo& info = f.info(s.name);
    CHECK(info.dtype == DType::BF16);
    CHECK(info.shape == s.shape);
    std::vector<uint16_t> raw(static_cast<size_t>(s.numel()));
    f.copy_to(s.name, raw.data(), DType::BF16, s.shape);
    for (int64_t i = 0; i < s.numel(); ++i) {  // bf16: 8 significant bits, rounding error <= 2^-8
      const uint32_t bits = static_cast<uint32_t>(raw[i]) << 16;
      float x;
      std::memcpy(&x, &bits, 4);
      const double want = values[static_cast<size_t>(s.offset + i)];
      REQUIRE(std::abs(x - want) <= std::abs(want) * 0.00391);
    }
  }
  const auto j = nlohmann::json::parse(test::file_bytes(dir / "out/config.json"));
  CHECK(j.at("model_type") == "mixtral");
  CHECK(j.at("num_local_experts") == 4);
  CHECK(j.at("num_experts_per_tok") == 2);
  CHECK(j.at("hidden_size") == 16);
  CHECK(j.at("intermediate_size") == 24);
  CHECK(j.at("torch_dtype") == "bfloat16");
}

TEST_CASE("config.json claims Mixtral only for models with Mixtral's weights", "[checkpoint]") {
  ModelConfig m;
  m.vocab_size = 32;
  m.d_model = 16;
  m.n_layers = 2;
  m.n_heads = 2;
  m.moe.d_ffn = 24;
  CHECK(hf_config_json(m, DType::F32).at("model_type") == "mixtral");
  // Routing other than Mixtral's: its gates renormalise the top-k probabilities, softmax_all's do not;
  // null experts, capacity drops and a selection bias change which experts a token gets.
  for (auto set : std::vector<std::function<void(MoeConfig&)>>{
           [](MoeConfig& c) { c.selector.gate = "softmax_all"; }, [](MoeConfig& c) { c.selector.n_null = 1; },
           [](MoeConfig& c) { c.selector.capacity_factor = 1.5; }, [](MoeConfig& c) { c.aux.bias_update_rate = 1e-3; },
           [](MoeConfig& c) { c.selector.type = "topp"; }, [](MoeConfig& c) { c.scorer.type = "large_router"; }}) {
    ModelConfig other = m;
    set(other.moe);
    CHECK(hf_config_json(other, DType::F32).at("model_type") == "autonomoe_moe");
  }
  m.moe.expert.type = "factorized";
  m.moe.expert.d_low = 4;
  m.moe.scorer.type = "act_norm";
  const auto aoe = hf_config_json(m, DType::F32);
  CHECK(aoe.at("model_type") == "autonomoe_moe");
  CHECK(aoe.at("autonomoe").at("expert").at("d_low") == 4);
  CHECK(aoe.at("autonomoe").at("expert").at("d_wide") == m.moe.hidden_width(16));
  CHECK(aoe.at("intermediate_size") == m.moe.hidden_width(16));
}
