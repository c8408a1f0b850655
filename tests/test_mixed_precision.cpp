// Mixed precision (run.precision: bf16) on the CPU: the bf16 rounding itself, matmul with bf16
// operands (an exact emulation of a bf16-in, fp32-accumulate GEMM), the weight copy that spares
// re-rounding the parameters, and whole training runs (close to fp32, deterministic, bit-exact
// resume). The CUDA bf16 GEMM is held to this emulation by tests/cuda.
#include "core/bf16.h"
#include "cpu/cpu_backend.h"
#include "io/checkpoint_dir.h"
#include "support/synthetic_run.h"
#include "test_cpu_util.h"
#include "train/trainer.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

using namespace am;

namespace {

// A random (rows, cols) fp32 tensor whose values are not bf16-representable (almost surely).
Tensor random_f32(test::Arena& ar, int64_t rows, int64_t cols, std::mt19937_64& rng) {
  return ar.randn({rows, cols}, rng);
}

// t with every value rounded to bf16 (a new tensor of the arena).
Tensor rounded(test::Arena& ar, const Tensor& t) {
  Tensor r = ar.clone(t);
  for (int64_t i = 0; i < r.numel(); ++i) r.as<float>()[i] = bf16_round(r.as<float>()[i]);
  return r;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("bf16 rounding: nearest, ties to even, NaN and infinity kept", "[bf16]") {
  // bf16 keeps 7 fraction bits: the spacing at 1 is 2^-7, and 1 + 2^-8 lies half-way.
  CHECK(bf16_round(1.0f) == 1.0f);
  CHECK(bf16_round(1.0f + std::ldexp(1.0f, -9)) == 1.0f);                             // below half: down
  CHECK(bf16_round(1.0f + std::ldexp(1.0f, -8)) == 1.0f);                             // tie: to even (1.0)
  CHECK(bf16_round(1.0f + 3 * std::ldexp(1.0f, -8)) == 1.0f + std::ldexp(1.0f, -6));  // tie: to even
  CHECK(bf16_round(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 1.0f + std::ldexp(1.0f, -7));
  CHECK(bf16_round(-2.5f) == -2.5f);
  CHECK(std::isnan(bf16_round(std::numeric_limits<float>::quiet_NaN())));
  CHECK(std::isnan(bf16_round(std::numeric_limits<float>::signaling_NaN())));  // not turned into inf
  CHECK(bf16_round(std::numeric_limits<float>::infinity()) == std::numeric_limits<float>::infinity());
  CHECK(bf16_round(std::numeric_limits<float>::max()) == std::numeric_limits<float>::infinity());
  CHECK(f32_to_bf16_bits(1.0f) == 0x3F80);
  CHECK(bf16_bits_to_f32(0xC020) == -2.5f);
  // The relative rounding error is at most 2^-8 (8 significant bits) for normal numbers, and
  // exceeds 2^-9 for some.
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd(0.0f, 100.0f);
  int above_half = 0;
  for (int i = 0; i < 1000; ++i) {
    const float x = nd(rng);
    CHECK(std::fabs(bf16_round(x) - x) <= std::ldexp(std::fabs(x), -8));
    above_half += std::fabs(bf16_round(x) - x) > std::ldexp(std::fabs(x), -9);
  }
  CHECK(above_half > 0);
}

TEST_CASE("bf16 matmul equals the fp32 product of the bf16-rounded operands, bit for bit", "[bf16]") {
  CpuBackend fp32(DType::F32, 2), bf16(DType::F32, 2, /*bf16_matmul=*/true);
  CHECK(bf16.bf16_matmul());
  CHECK_FALSE(fp32.bf16_matmul());
  test::Arena ar(fp32);
  std::mt19937_64 rng(11);
  const int64_t M = 37, N = 29, K = 300;  // K large enough that the rounding shows in the sums
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      CAPTURE(ta, tb);
      const Tensor a = ta ? random_f32(ar, K, M, rng) : random_f32(ar, M, K, rng);
      const Tensor b = tb ? random_f32(ar, N, K, rng) : random_f32(ar, K, N, rng);
      const Tensor c0 = random_f32(ar, M, N, rng);
      Tensor c_bf16 = ar.clone(c0), c_ref = ar.clone(c0), c_fp32 = ar.clone(c0);
      bf16.matmul(c_bf16, a, ta, b, tb, 0.5, 1.0);  // accumulate into c: beta stays fp32
      fp32.matmul(c_ref, rounded(ar, a), ta, rounded(ar, b), tb, 0.5, 1.0);
      fp32.matmul(c_fp32, a, ta, b, tb, 0.5, 1.0);
      CHECK(bitwise_equal(c_bf16, c_ref));
      CHECK_FALSE(bitwise_equal(c_bf16, c_fp32));  // the operands really were rounded
      // ... by no more than bf16's rounding allows: each product moves by at most
      // (2^-8 + 2^-8 + 2^-16) |a||b|, plus fp32 summation slack.
      auto at = [&](const Tensor& t, bool tr, int64_t r, int64_t col) {
        return double(tr ? t.as<float>()[col * t.dims[1] + r] : t.as<float>()[r * t.dims[1] + col]);
      };
      int64_t violations = 0;
      for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
          double abs_sum = 0;
          for (int64_t k = 0; k < K; ++k) abs_sum += std::fabs(at(a, ta, i, k) * at(b, !tb, j, k));
          const double err = std::fabs(double(c_bf16.as<float>()[i * N + j]) - c_fp32.as<float>()[i * N + j]);
          violations += err > 0.5 * abs_sum * (std::ldexp(1.0, -7) + std::ldexp(1.0, -16) + 1e-6) + 1e-5;
        }
      }
      CHECK(violations == 0);
    }
  }
}

TEST_CASE("bf16 matmul reads parameters from the weight copy, refreshed on demand", "[bf16]") {
  CpuBackend be(DType::F32, 2, /*bf16_matmul=*/true);
  test::Arena ar(be);
  std::mt19937_64 rng(12);
  const int64_t M = 16, N = 24, K = 40;
  const Tensor master = ar.randn({N * K + 100}, rng);                                   // a flat parameter buffer
  const Tensor w = Tensor(static_cast<float*>(master.data) + 100, DType::F32, {N, K});  // inside it
  const Tensor x = random_f32(ar, M, K, rng);
  Tensor direct = ar.f({M, N}), cached = ar.f({M, N}), after = ar.f({M, N});
  be.matmul(direct, x, false, w, true, 1.0, 0.0);  // not registered: rounded per call
  be.refresh_weight_copy(master);
  be.matmul(cached, x, false, w, true, 1.0, 0.0);
  CHECK(bitwise_equal(direct, cached));

  // Change the parameters: a refresh makes matmul see the new values.
  for (int64_t i = 0; i < master.numel(); ++i) master.as<float>()[i] *= 1.5f;
  be.refresh_weight_copy(master);
  be.matmul(after, x, false, w, true, 1.0, 0.0);
  Tensor expect = ar.f({M, N});
  CpuBackend fp32(DType::F32, 2);
  fp32.matmul(expect, rounded(ar, x), false, rounded(ar, w), true, 1.0, 0.0);
  CHECK(bitwise_equal(after, expect));
  CHECK_FALSE(bitwise_equal(after, cached));

  // An empty tensor forgets the copy: operands are rounded per call again.
  be.refresh_weight_copy(Tensor());
  for (int64_t i = 0; i < master.numel(); ++i) master.as<float>()[i] *= -1.0f;
  Tensor negated = ar.f({M, N});
  be.matmul(negated, x, false, w, true, 1.0, 0.0);
  for (int64_t i = 0; i < negated.numel(); ++i) CHECK(negated.as<float>()[i] == -after.as<float>()[i]);
}

TEST_CASE("bf16 training follows fp32 closely, is deterministic and resumes bit for bit", "[bf16][train]") {
  test::TempDir dir("bf16_train");
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  const TrainSummary fp32 = train(load_config(yaml, {"run.name=fp32"}), test::quiet_train());
  const TrainSummary a = train(load_config(yaml, {"run.name=a", "run.precision=bf16"}), test::quiet_train());
  const TrainSummary b = train(load_config(yaml, {"run.name=b", "run.precision=bf16"}), test::quiet_train());
  REQUIRE(a.step_losses.size() == fp32.step_losses.size());
  CHECK(a.step_losses == b.step_losses);  // exact
  CHECK(a.step_losses != fp32.step_losses);
  // Stated tolerance: bf16 operands perturb each product by up to 2^-7 relative; over these steps
  // the loss stays within 1% of the fp32 run's.
  for (size_t i = 0; i < a.step_losses.size(); ++i) {
    CAPTURE(i, a.step_losses[i], fp32.step_losses[i]);
    CHECK(std::fabs(a.step_losses[i] - fp32.step_losses[i]) <= 0.01 * fp32.step_losses[i]);
  }

  // Resume from the first checkpoint: the master weights are fp32 in the checkpoint, and the bf16
  // copy is rebuilt from them, so the resumed run matches bit for bit.
  const auto ckpts = list_checkpoints(a.run_dir + "/checkpoints");
  REQUIRE(ckpts.size() >= 2);
  TrainOptions opt = test::quiet_train();
  opt.resume = ckpts[0].path;
  const TrainSummary resumed = train(load_config(yaml, {"run.name=resumed", "run.precision=bf16"}), opt);
  const size_t start = static_cast<size_t>(resumed.start_step);
  REQUIRE(resumed.step_losses.size() == a.step_losses.size() - start);
  for (size_t i = 0; i < resumed.step_losses.size(); ++i) CHECK(resumed.step_losses[i] == a.step_losses[start + i]);
  CHECK(test::file_bytes(resumed.last_checkpoint + "/model.safetensors") ==
        test::file_bytes(a.last_checkpoint + "/model.safetensors"));
}
