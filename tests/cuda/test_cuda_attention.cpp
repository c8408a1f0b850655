// CUDA causal attention (cuda/attention.cu) vs the CPU reference, fp32 on both sides, fresh random
// inputs. Tolerance for out, lse and every part of dqkv: |cuda - cpu| <= 1e-5 + 1e-4 |cpu|
// (the kernels accumulate in fp32 over up to T keys, or group * T queries; the CPU in double).
// Outputs on the CUDA side start as NaN, so an entry the kernels never write fails the comparison.
#include "cuda_test_util.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <limits>
#include <vector>

using namespace am;
using namespace am::test;

namespace {

constexpr double kRtol = 1e-4, kAtol = 1e-5;

struct Case {
  int64_t B, T, H, Hkv, hd;
};

AttnShape shape_of(const Case& c) {
  AttnShape s;
  s.B = c.B;
  s.T = c.T;
  s.n_heads = c.H;
  s.n_kv_heads = c.Hkv;
  s.head_dim = c.hd;
  return s;
}

std::vector<float> nans(int64_t n) {
  return std::vector<float>(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The tensors of one attention call on both backends.
struct Attn {
  AttnShape s;
  Twin qkv, out, lse, dout, dqkv;
  Attn(Pair& p, const Case& c, uint64_t seed)
      : s(shape_of(c)),
        qkv(p, {c.B * c.T, s.qkv_dim()}, randn(size_t(c.B * c.T * s.qkv_dim()), seed)),
        out(p, {c.B * c.T, s.q_dim()}, nans(c.B * c.T * s.q_dim())),
        lse(p, {c.B, c.H, c.T}, nans(c.B * c.H * c.T)),
        dout(p, {c.B * c.T, s.q_dim()}, randn(size_t(c.B * c.T * s.q_dim()), seed + 1)),
        dqkv(p, {c.B * c.T, s.qkv_dim()}, nans(c.B * c.T * s.qkv_dim())) {}

  void forward_gpu(Pair& p) { p.gpu->attention_forward(out.g, lse.g, qkv.g, s); }
  void backward_gpu(Pair& p) { p.gpu->attention_backward(dqkv.g, dout.g, qkv.g, out.g, lse.g, s); }
  // Forward and backward on both backends; each backward reads its own forward's out and lse.
  void run_both(Pair& p) {
    forward_gpu(p);
    p.cpu->attention_forward(out.c, lse.c, qkv.c, s);
    backward_gpu(p);
    p.cpu->attention_backward(dqkv.c, dout.c, qkv.c, out.c, lse.c, s);
  }
  void require_parity(Pair& p) {
    {
      INFO("out (B*T, H*hd)");
      require_twin_close(p, out, kRtol, kAtol);
    }
    {
      INFO("lse (B, H, T)");
      require_twin_close(p, lse, kRtol, kAtol);
    }
    {
      INFO("dqkv (B*T, qkv_dim): q part < " << s.q_dim() << ", k part < " << s.q_dim() + s.kv_dim());
      require_twin_close(p, dqkv, kRtol, kAtol);
    }
  }
};

void check_parity(const Case& c, uint64_t seed) {
  INFO("B " << c.B << " T " << c.T << " H " << c.H << " Hkv " << c.Hkv << " hd " << c.hd);
  Pair p;
  Attn a(p, c, seed);
  a.run_both(p);
  a.require_parity(p);
}

}  // namespace

TEST_CASE("cuda attention forward and backward match the CPU", "[cuda]") {
  const std::vector<Case> cases = {
      {1, 7, 1, 1, 8},
      {2, 33, 4, 2, 16},
      {2, 128, 4, 4, 64},
      {1, 257, 2, 1, 32},
      {1, 64, 4, 1, 128},
      // one row; odd head dim (rows not 16-byte aligned); partial 128- and 256-wide head tiles; the
      // widest head; a tiny head; eight query heads per kv head
      {3, 1, 2, 1, 16},
      {1, 50, 3, 1, 13},
      {2, 65, 2, 2, 96},
      {1, 70, 2, 1, 200},
      {1, 33, 1, 1, 256},
      {2, 19, 2, 1, 2},
      {2, 96, 8, 1, 48},
  };
  uint64_t seed = 100;
  for (const Case& c : cases) check_parity(c, seed += 10);
}

TEST_CASE("cuda attention matches the CPU on a 1024-token sequence", "[cuda][large]") {
  check_parity({1, 1024, 2, 2, 64}, 7);
}

TEST_CASE("cuda attention with no rows writes nothing and does not fail", "[cuda]") {
  Pair p;
  for (const Case& c : {Case{0, 16, 2, 1, 64}, Case{2, 0, 2, 1, 64}}) {
    Attn a(p, c, 3);
    CHECK_NOTHROW(a.forward_gpu(p));
    CHECK_NOTHROW(a.backward_gpu(p));
    CHECK_NOTHROW(p.gpu->synchronize());
  }
}

TEST_CASE("cuda attention rejects head dims above 256 with a clear error", "[cuda]") {
  Pair p;
  Attn a(p, {1, 2, 1, 1, 264}, 5);
  CHECK_THROWS_WITH(a.forward_gpu(p), Catch::Contains("head dims up to 256"));
  CHECK_THROWS_WITH(a.backward_gpu(p), Catch::Contains("head dims up to 256"));
}

TEST_CASE("cuda attention is causal: a later token's k and v leave earlier rows bitwise unchanged", "[cuda]") {
  // t_star sits inside the second 64-row tile, so the earlier rows of that tile share its key tile.
  const Case c{2, 130, 4, 2, 32};
  const int64_t t_star = 100;
  Pair p;
  Attn a(p, c, 21);
  a.forward_gpu(p);
  a.backward_gpu(p);
  const std::vector<float> out1 = a.out.from_gpu(p), lse1 = a.lse.from_gpu(p), dqkv1 = a.dqkv.from_gpu(p);

  // New k and v (every kv head) for token t_star of every sequence. Any leak into an earlier row
  // would change its bits; larger values would only test fp32 conditioning against the CPU.
  std::vector<float> qkv = a.qkv.from_gpu(p);
  const int64_t row = a.s.qkv_dim(), q_dim = a.s.q_dim();
  const std::vector<float> fresh = randn(size_t(c.B * 2 * a.s.kv_dim()), 22);
  for (int64_t b = 0; b < c.B; ++b) {
    for (int64_t i = 0; i < 2 * a.s.kv_dim(); ++i) {
      qkv[size_t((b * c.T + t_star) * row + q_dim + i)] = fresh[size_t(b * 2 * a.s.kv_dim() + i)];
    }
  }
  p.gpu->upload(a.qkv.g, qkv.data());
  p.cpu->upload(a.qkv.c, qkv.data());
  a.run_both(p);
  a.require_parity(p);  // the new values are right, not merely unchanged
  const std::vector<float> out2 = a.out.from_gpu(p), lse2 = a.lse.from_gpu(p), dqkv2 = a.dqkv.from_gpu(p);

  for (int64_t b = 0; b < c.B; ++b) {
    INFO("sequence " << b);
    auto rows = [&](const std::vector<float>& v, int64_t width, int64_t t0, int64_t t1, int64_t cols) {
      std::vector<float> r;
      for (int64_t t = t0; t < t1; ++t) {
        const float* p0 = v.data() + (b * c.T + t) * width;
        r.insert(r.end(), p0, p0 + cols);
      }
      return r;
    };
    CHECK(bitwise_equal(rows(out1, q_dim, 0, t_star, q_dim), rows(out2, q_dim, 0, t_star, q_dim)));
    CHECK(bitwise_equal(rows(dqkv1, row, 0, t_star, q_dim), rows(dqkv2, row, 0, t_star, q_dim)));  // dq
    for (int64_t h = 0; h < c.H; ++h) {
      const size_t at = size_t((b * c.H + h) * c.T);
      CHECK(std::memcmp(&lse1[at], &lse2[at], size_t(t_star) * sizeof(float)) == 0);
    }
    // ... while the row of t_star itself did change.
    CHECK_FALSE(
        bitwise_equal(rows(out1, q_dim, t_star, t_star + 1, q_dim), rows(out2, q_dim, t_star, t_star + 1, q_dim)));
  }
}

TEST_CASE("cuda attention is deterministic: repeated calls give the same bits", "[cuda]") {
  Pair p;
  Attn a(p, {2, 200, 6, 2, 64}, 31);
  a.forward_gpu(p);
  const std::vector<float> out1 = a.out.from_gpu(p), lse1 = a.lse.from_gpu(p);
  a.backward_gpu(p);
  const std::vector<float> dqkv1 = a.dqkv.from_gpu(p);
  const std::vector<float> poison = nans(a.dqkv.g.numel());
  p.gpu->upload(a.dqkv.g, poison.data());
  a.forward_gpu(p);
  a.backward_gpu(p);
  CHECK(bitwise_equal(out1, a.out.from_gpu(p)));
  CHECK(bitwise_equal(lse1, a.lse.from_gpu(p)));
  CHECK(bitwise_equal(dqkv1, a.dqkv.from_gpu(p)));
}
