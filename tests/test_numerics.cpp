// Non-finite weights never reach a checkpoint (issue 10 point 6): the update flag AdamW sets as it
// writes, the step that reads it with the losses, the trainer that stops without a checkpoint,
// save_checkpoint's and load_checkpoint's refusals (of weights and of AdamW moments).
#include "cpu/cpu_backend.h"
#include "io/checkpoint_dir.h"
#include "io/finite_values.h"
#include "model/transformer.h"
#include "support/poison_checkpoint.h"
#include "support/synthetic_run.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/step.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

using namespace am;
namespace fs = std::filesystem;

namespace {

// The backend's update flag, read through copy_update_flag.
int flag_of(Backend& be) {
  TensorBuf f(be, be.dtype(), {1});
  be.copy_update_flag(f);
  return static_cast<int>(download_as_double(be, f).front());
}

// Four tensors (n) of zeros, except grad = 1.
struct Adam4 {
  explicit Adam4(Backend& be, int64_t n)
      : p(be, be.dtype(), {n}), g(be, be.dtype(), {n}), m(be, be.dtype(), {n}), v(be, be.dtype(), {n}) {
    for (Tensor t : {p.t(), m.t(), v.t()}) be.zero(t);
    const std::vector<double> ones(static_cast<size_t>(n), 1.0);
    upload_from_double(be, g, ones);
  }
  TensorBuf p, g, m, v;
};

AdamWStep step_with(double lr, double wd, int tag) {
  AdamWStep s;
  s.lr = lr;
  s.weight_decay = wd;
  s.tag = tag;
  return s;
}

Config small_config(const test::TempDir& dir, std::vector<std::string> sets) {
  sets.push_back("run.name=num");
  return load_config(test::make_synthetic_run(dir, test::kSmallMoe), sets);
}

}  // namespace

TEST_CASE("cpu adamw update flag: 0 while finite, then the tag of the first call that overflowed", "[cpu]") {
  for (DType dt : {DType::F32, DType::F64}) {
    CpuBackend be(dt, 2);
    Adam4 a(be, 5000), b(be, 3);
    upload_from_double(be, a.p, std::vector<double>(5000, 0.5));
    be.adamw_update(a.p, a.g, a.m, a.v, step_with(1e-3, 0.1, 7));
    CHECK(flag_of(be) == 0);
    // lr * weight_decay * p overflows: the float weights become infinite (the double ones do not)
    const double wd = dt == DType::F32 ? 1e12 : 1e300;
    upload_from_double(be, b.p, {0.5, 0.5, 0.5});
    be.adamw_update(b.p, b.g, b.m, b.v, step_with(1e30, wd, 3));
    CHECK(flag_of(be) == 3);
    be.adamw_update(a.p, a.g, a.m, a.v, step_with(1e30, wd, 9));  // a later one does not replace it
    CHECK(flag_of(be) == 3);
    be.clear_update_flag();
    CHECK(flag_of(be) == 0);
  }
}

TEST_CASE("cpu adamw update flag: a NaN gradient shows in the moments", "[cpu]") {
  CpuBackend be(DType::F32, 1);
  Adam4 a(be, 4);
  upload_from_double(be, a.g, {1.0, std::numeric_limits<double>::quiet_NaN(), 1.0, 1.0});
  be.adamw_update(a.p, a.g, a.m, a.v, step_with(1e-3, 0.0, 2));
  CHECK(flag_of(be) == 2);
}

TEST_CASE("the next step's forward reads the flag with its losses and names the tensor", "[training]") {
  test::TempDir dir("flag_step");
  const Config cfg = small_config(dir, {"train.lr=1e30", "train.weight_decay=1e12", "train.warmup_steps=0"});
  CpuBackend be(DType::F32, 1);
  Transformer model(be, cfg.model, cfg.train.micro_batch_size, cfg.data.seq_len);
  model.store().init(1);
  AdamW opt(model.store(), cfg.train);
  auto batch = [](int32_t* in, int32_t* tg) {
    for (int i = 0; i < 4 * 16; ++i) in[i] = tg[i] = i % 32;
  };
  train_step(model, opt, cfg.train, 0, 1, batch);  // its own loss is finite: the update overflows
  CHECK(opt.read_update_flag() == 1);              // tag 1: table index 0, the first decayed tensor
  CHECK_THROWS_WITH(train_step(model, opt, cfg.train, 1, 1, batch),
                    Catch::Contains("diverged: the AdamW update of step 1 (learning rate 1e+30) made tensor "
                                    "model.embed_tokens.weight non-finite"));
}

TEST_CASE("a non-finite loss or gradient stops the step before the update", "[training]") {
  test::TempDir dir("nan_grad");
  const Config cfg = small_config(dir, {"train.warmup_steps=0"});
  CpuBackend be(DType::F32, 1);
  Transformer model(be, cfg.model, cfg.train.micro_batch_size, cfg.data.seq_len);
  model.store().init(1);
  AdamW opt(model.store(), cfg.train);
  const ParamTable& t = model.store().table();
  Tensor head = model.store().value(t.index("lm_head.weight"));
  std::vector<double> w = download_as_double(be, head);
  w[3] = std::numeric_limits<double>::infinity();
  upload_from_double(be, head, w);
  const std::vector<double> before = download_as_double(be, model.store().all_values());
  auto batch = [](int32_t* in, int32_t* tg) {
    for (int i = 0; i < 4 * 16; ++i) in[i] = tg[i] = i % 32;
  };
  CHECK_THROWS_WITH(train_step(model, opt, cfg.train, 0, 1, batch), Catch::Contains("is not finite; stopping without"));
  const std::vector<double> after = download_as_double(be, model.store().all_values());
  CHECK(std::equal(before.begin(), before.end(), after.begin(),
                   [](double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }));
  CHECK(opt.read_update_flag() == 0);  // no update ran
}

TEST_CASE("a diverging run stops without writing a checkpoint", "[training]") {
  for (const char* every : {"checkpoint.every=1", "checkpoint.every=0"}) {
    INFO(every);
    test::TempDir dir("diverge");
    const Config cfg = small_config(dir, {"train.lr=1e30", "train.weight_decay=1e12", every});
    CHECK_THROWS_WITH(train(cfg, test::quiet_train()),
                      Catch::Contains("made tensor model.embed_tokens.weight non-finite"));
    const fs::path ckpts = fs::path(run_dir_of(cfg)) / "checkpoints";
    CHECK((!fs::exists(ckpts) || fs::is_empty(ckpts)));
  }
}

TEST_CASE("save_checkpoint refuses non-finite weights, load_checkpoint a checkpoint that holds them", "[checkpoint]") {
  test::TempDir dir("nonfinite");
  const Config cfg = small_config(dir, {});
  CpuBackend be(DType::F32, 1);
  Transformer model(be, cfg.model, 1, 4);
  model.store().init(2);
  TrainerState st;
  st.step = 4;
  st.train_loader = nlohmann::json::object();
  const std::string good = save_checkpoint(dir / "ck", cfg, model.store(), nullptr, st);

  const std::string name = "model.layers.1.block_sparse_moe.experts.2.w2.weight";
  const std::string bad = test::poison_checkpoint(good, dir / "poisoned", name);
  verify_checkpoint(bad);  // its manifest matches: only the values are wrong
  Transformer other(be, cfg.model, 1, 4);
  load_checkpoint(good, other.store(), nullptr);
  CHECK_THROWS_WITH(
      load_checkpoint(bad, other.store(), nullptr),
      Catch::Contains("model.safetensors: tensor " + name + " holds a non-finite value (nan at element 0)"));

  const ParamTable& t = model.store().table();
  Tensor w = model.store().value(t.index(name));
  std::vector<double> values = download_as_double(be, w);
  values[5] = std::numeric_limits<double>::infinity();
  upload_from_double(be, w, values);
  st.step = 5;
  CHECK_THROWS_WITH(save_checkpoint(dir / "ck", cfg, model.store(), nullptr, st),
                    Catch::Contains("refusing to write the checkpoint of step 5: tensor " + name +
                                    " holds a non-finite value (inf at element 5)"));
  CHECK(!fs::exists(dir / "ck/step_00000005"));
}

TEST_CASE("save_checkpoint refuses non-finite AdamW moments, load_checkpoint a checkpoint that holds them",
          "[checkpoint]") {
  test::TempDir dir("nonfinite-opt");
  const Config cfg = small_config(dir, {});
  CpuBackend be(DType::F32, 1);
  Transformer model(be, cfg.model, 1, 4);
  model.store().init(2);
  AdamW opt(model.store(), cfg.train);
  TrainerState st;
  st.step = 4;
  st.train_loader = nlohmann::json::object();
  const std::string good = save_checkpoint(dir / "ck", cfg, model.store(), &opt, st);

  const std::string weight = "model.layers.1.block_sparse_moe.experts.2.w2.weight";
  for (const char* moment : {".exp_avg", ".exp_avg_sq"}) {
    const std::string name = weight + moment;
    INFO(name);
    const std::string bad =
        test::poison_checkpoint(good, dir / ("poisoned" + std::string(moment)), name, "optimizer.safetensors");
    verify_checkpoint(bad);  // its manifest matches: only the values are wrong
    Transformer other(be, cfg.model, 1, 4);
    AdamW other_opt(other.store(), cfg.train);
    load_checkpoint(good, other.store(), &other_opt);
    CHECK_THROWS_WITH(load_checkpoint(bad, other.store(), &other_opt),
                      Catch::Contains(bad + "/optimizer.safetensors: tensor " + name +
                                      " holds a non-finite value (nan at element 0)"));
  }

  const int i = model.store().table().index(weight);
  std::vector<float> v(static_cast<size_t>(model.store().table().at(i).numel()), 0.f);
  v[3] = -std::numeric_limits<float>::infinity();
  opt.set_moment(i, AdamW::Moment::V, v.data());
  st.step = 5;
  CHECK_THROWS_WITH(save_checkpoint(dir / "ck", cfg, model.store(), &opt, st),
                    Catch::Contains("refusing to write the checkpoint of step 5 (optimizer state): tensor " + weight +
                                    ".exp_avg_sq holds a non-finite value (-inf at element 3)"));
  CHECK(!fs::exists(dir / "ck/step_00000005"));
}

TEST_CASE("first_nonfinite finds the first NaN or infinity of F32, F64 and BF16 values", "[checkpoint]") {
  const std::vector<float> f = {1.f, 2.f, -std::numeric_limits<float>::infinity(), NAN};
  const std::vector<double> d = {0.0, std::nan(""), 1.0};
  CHECK(first_nonfinite(f.data(), DType::F32, 4) == 2);
  CHECK(first_nonfinite(f.data(), DType::F32, 2) == -1);
  CHECK(first_nonfinite(d.data(), DType::F64, 3) == 1);
  const std::vector<uint16_t> b = {f32_to_bf16_bits(1.f), f32_to_bf16_bits(std::numeric_limits<float>::infinity())};
  CHECK(first_nonfinite(b.data(), DType::BF16, 2) == 1);
}
