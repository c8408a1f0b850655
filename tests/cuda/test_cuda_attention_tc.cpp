// CUDA tensor-core attention (cuda/attention_tc.cu, run.precision: bf16) vs the CPU's emulation of
// its rounding points (cpu/ops_attention_bf16.h), on fresh random inputs. Both round Q, K, V, dO,
// P and dS to bf16 at the same points; they differ in
//  - where the forward rounds P: the GPU relative to the running row max of its online softmax
//    (then rescales the fp32 accumulator by exp(m_old - m_new)), the CPU relative to the final max,
//    so an element of P can round to a neighbouring bf16 value (2^-8 relative) on one side only
//    (only when a row's max moves to a later key tile: one-tile rows agree to fp32 rounding);
//  - the sums (fp32 on the GPU, double on the CPU) and exp, whose tiny differences can move a
//    value of P or dS across a bf16 rounding boundary.
// Each flip changes one term by at most 2^-8 of itself, so the results differ by a small fraction
// of bf16's own error. Tolerance per entry, relative to the largest |cpu| entry of the tensor:
//   out 2e-3, lse 2e-4, dqkv 1e-3  (|cuda - cpu| <= tol * max|cpu|).
// Measured on the simulator (worst case, T = 130: the row max moves between tiles): out 6.3e-4,
// lse 1e-7, dqkv 7.3e-5; the fp32 kernels (no bf16 rounding) against the same emulation miss by
// at least out 2.2e-3, lse 4.1e-4, dqkv 2.5e-3, so the test tells the two apart.
// The backward on both sides reads the CPU forward's out and lse, so that it alone is compared.
// Outputs on the CUDA side start as NaN, so an entry the kernels never write fails the comparison.
#include "cuda_test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

using namespace am;
using namespace am::test;

namespace {

constexpr double kOutTol = 2e-3, kLseTol = 2e-4, kDqkvTol = 1e-3;

struct Case {
  int64_t B, T, H, Hkv, hd;
};

std::vector<float> nans(int64_t n) {
  return std::vector<float>(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
}

// |g - c| <= tol * max|c| for every entry.
void require_bf16_close(const std::vector<float>& g, const std::vector<float>& c, double tol) {
  REQUIRE(g.size() == c.size());
  double big = 0;
  for (float x : c) big = std::max(big, double(std::abs(x)));
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("entry " << i << ": cuda " << g[i] << " cpu " << c[i] << " (largest |cpu| " << big << ")");
    REQUIRE(std::abs(double(g[i]) - c[i]) <= tol * big);  // false for NaN too
  }
}

void check_parity(const Case& c, uint64_t seed) {
  INFO("B " << c.B << " T " << c.T << " H " << c.H << " Hkv " << c.Hkv << " hd " << c.hd);
  Pair p(/*bf16_matmul=*/true);
  AttnShape s;
  s.B = c.B;
  s.T = c.T;
  s.n_heads = c.H;
  s.n_kv_heads = c.Hkv;
  s.head_dim = c.hd;
  Twin qkv(p, {c.B * c.T, s.qkv_dim()}, randn(size_t(c.B * c.T * s.qkv_dim()), seed));
  Twin out(p, {c.B * c.T, s.q_dim()}, nans(c.B * c.T * s.q_dim()));
  Twin lse(p, {c.B, c.H, c.T}, nans(c.B * c.H * c.T));
  Twin dout(p, {c.B * c.T, s.q_dim()}, randn(size_t(c.B * c.T * s.q_dim()), seed + 1));
  Twin dqkv(p, {c.B * c.T, s.qkv_dim()}, nans(c.B * c.T * s.qkv_dim()));
  p.gpu->attention_forward(out.g, lse.g, qkv.g, s);
  p.cpu->attention_forward(out.c, lse.c, qkv.c, s);
  {
    INFO("out (B*T, H*hd)");
    require_bf16_close(out.from_gpu(p), out.from_cpu(p), kOutTol);
  }
  {
    INFO("lse (B, H, T)");
    require_bf16_close(lse.from_gpu(p), lse.from_cpu(p), kLseTol);
  }
  // The backward on both sides reads the CPU forward's out and lse.
  p.gpu->upload(out.g, out.from_cpu(p).data());
  p.gpu->upload(lse.g, lse.from_cpu(p).data());
  p.gpu->attention_backward(dqkv.g, dout.g, qkv.g, out.g, lse.g, s);
  p.cpu->attention_backward(dqkv.c, dout.c, qkv.c, out.c, lse.c, s);
  {
    INFO("dqkv (B*T, qkv_dim): q part < " << s.q_dim() << ", k part < " << s.q_dim() + s.kv_dim());
    require_bf16_close(dqkv.from_gpu(p), dqkv.from_cpu(p), kDqkvTol);
  }
}

}  // namespace

TEST_CASE("cuda tensor-core attention matches the CPU's bf16 emulation", "[cuda][bf16]") {
  // T not a multiple of the 64-row tiles (tails masked), several tiles, one row; grouped-query heads
  // (2 and 4 query heads per kv head) and one kv head; head dims 64 (the 732M paper config),
  // 32 and 16 (configs/tiny.yaml, configs/tiny/), 128, a padded 96, 8, and 256.
  const std::vector<Case> cases = {
      {1, 7, 1, 1, 16},  {2, 33, 4, 2, 64}, {1, 130, 2, 1, 64}, {1, 64, 4, 1, 128}, {2, 1, 2, 1, 16},
      {1, 70, 4, 2, 96}, {1, 19, 2, 2, 8},  {1, 40, 2, 1, 256}, {1, 300, 4, 2, 64}, {2, 70, 4, 4, 32},
  };
  uint64_t seed = 500;
  for (const Case& c : cases) check_parity(c, seed += 10);
}

TEST_CASE("cuda tensor-core attention is deterministic: repeated calls give the same bits", "[cuda][bf16]") {
  Pair p(/*bf16_matmul=*/true);
  AttnShape s;
  s.B = 2;
  s.T = 150;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.head_dim = 64;
  Twin qkv(p, {s.B * s.T, s.qkv_dim()}, randn(size_t(s.B * s.T * s.qkv_dim()), 41));
  Twin dout(p, {s.B * s.T, s.q_dim()}, randn(size_t(s.B * s.T * s.q_dim()), 42));
  Twin out(p, {s.B * s.T, s.q_dim()}, nans(s.B * s.T * s.q_dim()));
  Twin lse(p, {s.B, s.n_heads, s.T}, nans(s.B * s.n_heads * s.T));
  Twin dqkv(p, {s.B * s.T, s.qkv_dim()}, nans(s.B * s.T * s.qkv_dim()));
  std::vector<float> first[3];
  for (int run = 0; run < 2; ++run) {
    p.gpu->upload(dqkv.g, nans(dqkv.g.numel()).data());
    p.gpu->attention_forward(out.g, lse.g, qkv.g, s);
    p.gpu->attention_backward(dqkv.g, dout.g, qkv.g, out.g, lse.g, s);
    const std::vector<float> now[3] = {out.from_gpu(p), lse.from_gpu(p), dqkv.from_gpu(p)};
    for (int t = 0; t < 3; ++t) {
      if (run == 0) {
        first[t] = now[t];
      } else {
        INFO("tensor " << t << " (out, lse, dqkv)");
        CHECK(std::memcmp(first[t].data(), now[t].data(), now[t].size() * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("cuda tensor-core attention is causal: a later token's k and v leave earlier rows bitwise unchanged",
          "[cuda][bf16]") {
  // t_star inside the second 64-row tile: earlier rows of that tile share its key tile.
  Pair p(/*bf16_matmul=*/true);
  AttnShape s;
  s.B = 1;
  s.T = 130;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.head_dim = 32;
  const int64_t t_star = 100, row = s.qkv_dim(), q_dim = s.q_dim();
  std::vector<float> x = randn(size_t(s.T * row), 51);
  Twin qkv(p, {s.T, row}, x);
  Twin dout(p, {s.T, q_dim}, randn(size_t(s.T * q_dim), 52));
  Twin out(p, {s.T, q_dim}, nans(s.T * q_dim));
  Twin lse(p, {1, s.n_heads, s.T}, nans(s.n_heads * s.T));
  Twin dqkv(p, {s.T, row}, nans(s.T * row));
  auto run = [&] {
    p.gpu->attention_forward(out.g, lse.g, qkv.g, s);
    p.gpu->attention_backward(dqkv.g, dout.g, qkv.g, out.g, lse.g, s);
    return std::vector<std::vector<float>>{out.from_gpu(p), lse.from_gpu(p), dqkv.from_gpu(p)};
  };
  const auto before = run();
  const std::vector<float> fresh = randn(size_t(2 * s.kv_dim()), 53);
  std::copy(fresh.begin(), fresh.end(), x.begin() + t_star * row + q_dim);  // new k and v of token t_star
  p.gpu->upload(qkv.g, x.data());
  const auto after = run();
  for (int64_t t = 0; t < s.T; ++t) {
    INFO("row " << t);
    const bool same_out = std::memcmp(&before[0][size_t(t * q_dim)], &after[0][size_t(t * q_dim)], q_dim * 4) == 0;
    const bool same_dq = std::memcmp(&before[2][size_t(t * row)], &after[2][size_t(t * row)], q_dim * 4) == 0;
    bool same_lse = true;
    for (int64_t h = 0; h < s.n_heads; ++h) same_lse &= before[1][size_t(h * s.T + t)] == after[1][size_t(h * s.T + t)];
    if (t < t_star) {
      CHECK(same_out);
      CHECK(same_dq);
      CHECK(same_lse);
    } else if (t == t_star) {
      CHECK_FALSE(same_out);
    }
  }
}

TEST_CASE("cuda tensor-core attention matches the CPU's bf16 emulation on a 1024-token sequence", "[cuda][bf16]") {
  check_parity({1, 1024, 2, 1, 64}, 9);  // 16 key tiles: the row max moves between tiles often
}
