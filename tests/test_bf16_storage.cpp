// bf16 storage (core/backend.h, "bf16 storage"): under run.precision: bf16 a float op argument may
// be BF16; the op computes what it computes on the exact fp32 widening of its inputs and rounds
// each BF16 output once (nearest even). Checked bitwise against that definition, op by op, on the
// CPU reference (which has no bf16 code of its own: Backend::with_f32 is the implementation).
#include "core/bf16.h"
#include "test_cpu_util.h"

#include <cmath>
#include <random>

using namespace am;
using namespace am::test;

namespace {

// A BF16 tensor of random values (already bf16: exact in fp32) and its fp32 twin.
struct Pair16 {
  Tensor b, f;
};

Pair16 random_pair(Arena& ar, std::initializer_list<int64_t> shape, std::mt19937_64& rng, double sd = 1.0) {
  Pair16 p{ar.make(DType::BF16, shape), ar.make(DType::F32, shape)};
  std::normal_distribution<double> nd(0.0, sd);
  auto* b = static_cast<uint16_t*>(p.b.data);
  for (int64_t i = 0; i < p.b.numel(); ++i) {
    b[i] = f32_to_bf16_bits(static_cast<float>(nd(rng)));
    p.f.as<float>()[i] = bf16_bits_to_f32(b[i]);
  }
  return p;
}

// Every element of the BF16 tensor b is the fp32 tensor f rounded to bf16.
void require_rounded(const Tensor& b, const Tensor& f) {
  REQUIRE(b.numel() == f.numel());
  const auto* bits = static_cast<const uint16_t*>(b.data);
  int64_t bad = 0;
  for (int64_t i = 0; i < b.numel(); ++i) bad += bits[i] != f32_to_bf16_bits(f.as<float>()[i]);
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("bf16 storage: the dtype rule, act_dtype and the master tensors", "[cpu][bf16]") {
  CpuBackend fp32(DType::F32, 1), bf16(DType::F32, 1, /*bf16_matmul=*/true), fp64(DType::F64, 1);
  CHECK(fp32.act_dtype() == DType::F32);
  CHECK(bf16.act_dtype() == DType::BF16);
  CHECK(fp64.act_dtype() == DType::F64);
  Arena a32(fp32), a16(bf16);
  Tensor x16 = a32.make(DType::BF16, {2, 3}), out = a32.f({2, 3}), rstd = a32.f({2}), w = a32.f({3});
  CHECK_THROWS_WITH(fp32.rmsnorm_forward(x16, rstd, out, w, 1e-5),
                    Catch::Contains("rmsnorm_forward: out (2, 3) has dtype BF16, expected F32"));
  Tensor y16 = a16.make(DType::BF16, {2, 3}), rstd16 = a16.f({2}), x = a16.f({2, 3}), w16 = a16.f({3});
  CHECK_NOTHROW(bf16.rmsnorm_forward(y16, rstd16, x, w16, 1e-5));
  CHECK_THROWS_WITH(bf16.rmsnorm_forward(y16, rstd16, a16.make(DType::F64, {2, 3}), w16, 1e-5),
                    Catch::Contains("has dtype F64, expected F32 or BF16"));
  // Master weights, gradients and moments are never bf16 storage.
  AdamWStep s;
  CHECK_THROWS_WITH(bf16.adamw_update(y16, x, x, x, s),
                    Catch::Contains("adamw_update: param (2, 3) has dtype BF16, expected F32"));
}

TEST_CASE("bf16 storage: convert rounds to nearest even and widens exactly", "[cpu][bf16]") {
  CpuBackend be(DType::F32, 1, true);
  Arena ar(be);
  const float one = 1.0f, tie_down = 1.0f + std::ldexp(1.0f, -8), tie_up = 1.0f + 3 * std::ldexp(1.0f, -8);
  const float above = 1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20);
  Tensor f = ar.f({4}), b = ar.make(DType::BF16, {4}), back = ar.f({4});
  for (int i = 0; i < 4; ++i) f.as<float>()[i] = std::vector<float>{one, tie_down, tie_up, above}[i];
  be.convert(b, f);
  be.convert(back, b);
  CHECK(back.as<float>()[0] == 1.0f);
  CHECK(back.as<float>()[1] == 1.0f);                         // tie: to the even mantissa
  CHECK(back.as<float>()[2] == 1.0f + std::ldexp(1.0f, -6));  // tie: up to the even one
  CHECK(back.as<float>()[3] == 1.0f + std::ldexp(1.0f, -7));  // above the tie: up
  CHECK_THROWS_WITH(be.convert(ar.make(DType::F64, {4}), b), Catch::Contains("only F32 and BF16 convert"));
}

TEST_CASE("bf16 storage: each op on BF16 tensors is the fp32 op on their widening, rounded once", "[cpu][bf16]") {
  CpuBackend be(DType::F32, 1, true);
  Arena ar(be);
  std::mt19937_64 rng(7);
  const int64_t N = 6, d = 10, V = 17;

  SECTION("rmsnorm_forward writes a BF16 out") {
    Tensor x = ar.randn({N, d}, rng), w = ar.randn({d}, rng), rstd = ar.f({N}), rstd2 = ar.f({N});
    Tensor out16 = ar.make(DType::BF16, {N, d}), out32 = ar.f({N, d});
    be.rmsnorm_forward(out16, rstd, x, w, 1e-5);
    be.rmsnorm_forward(out32, rstd2, x, w, 1e-5);
    require_rounded(out16, out32);
    CHECK(same_bits(rstd, rstd2));
  }
  SECTION("swiglu forward and backward on BF16 g, u") {
    Pair16 g = random_pair(ar, {N, d}, rng), u = random_pair(ar, {N, d}, rng);
    Tensor h16 = ar.make(DType::BF16, {N, d}), h32 = ar.f({N, d});
    be.swiglu_forward(h16, g.b, u.b);
    be.swiglu_forward(h32, g.f, u.f);
    require_rounded(h16, h32);
    Tensor dh = ar.randn({N, d}, rng), dg16 = ar.f({N, d}), du16 = ar.f({N, d}), dg = ar.f({N, d}), du = ar.f({N, d});
    be.swiglu_backward(dg16, du16, dh, g.b, u.b);  // fp32 gradients from BF16 activations: exact widening
    be.swiglu_backward(dg, du, dh, g.f, u.f);
    CHECK(same_bits(dg16, dg));
    CHECK(same_bits(du16, du));
  }
  SECTION("matmul with BF16 operands and an accumulated BF16 c") {
    Pair16 a = random_pair(ar, {N, d}, rng), b = random_pair(ar, {V, d}, rng), c = random_pair(ar, {N, V}, rng);
    be.matmul(c.b, a.b, false, b.b, true, 0.5, 0.75);  // c = round(0.5 a b^T + 0.75 c)
    be.matmul(c.f, a.f, false, b.f, true, 0.5, 0.75);
    require_rounded(c.b, c.f);
    Tensor c32 = ar.f({N, V}), c_mixed = ar.f({N, V});
    be.matmul(c32, a.f, false, b.f, true, 1.0, 0.0);
    be.matmul(c_mixed, a.b, false, b.f, true, 1.0, 0.0);  // a BF16 operand = its fp32 value
    CHECK(same_bits(c32, c_mixed));
  }
  SECTION("the fused classifier overwrites BF16 logits with the rounded gradient") {
    Pair16 logits = random_pair(ar, {N, V}, rng, 3.0);
    Tensor targets = ar.i32({N}, {0, 16, -1, 3, 3, 9});
    Tensor loss16 = ar.f({N}), loss32 = ar.f({N});
    be.cross_entropy_forward_backward(loss16, logits.b, targets, 0.25);
    be.cross_entropy_forward_backward(loss32, logits.f, targets, 0.25);
    CHECK(same_bits(loss16, loss32));  // losses fp32, from the same (bf16) logits
    require_rounded(logits.b, logits.f);
  }
  SECTION("arguments sharing memory share one fp32 copy (an in-place add)") {
    Pair16 x = random_pair(ar, {N, d}, rng), y = random_pair(ar, {N, d}, rng);
    be.add(x.b, x.b, y.b);
    be.add(x.f, x.f, y.f);
    require_rounded(x.b, x.f);
  }
  SECTION("RoPE in place on a BF16 qkv") {
    const AttnShape s{1, N, 2, 1, 4};
    Pair16 qkv = random_pair(ar, {1, N, s.qkv_dim()}, rng);
    be.rope_forward(qkv.b, s, 1e4);
    be.rope_forward(qkv.f, s, 1e4);
    require_rounded(qkv.b, qkv.f);
  }
}
