// Decode attention (Backend::attention_decode, cuda/attention_decode.cu) on the GPU against the CPU
// reference, on fresh random inputs: MHA, GQA and MQA, head dims that do and do not divide the
// block (33, 48), up to 256, from 1 cached position to more than fit the default 48 KB of shared
// memory; the cache rows past n hold NaN (the op must not read them).
// Tolerances: fp32 |gpu - cpu| <= 1e-5 + 1e-5 |cpu| (fp32 sums against the CPU's double ones, on
// outputs of order 1). bf16 storage (out, q, k, v BF16): within that plus rtol 8e-3 (both round once
// to bf16, from values that agree to ~1e-6, so they can land on neighbouring bf16 values: one ulp
// is at most 2^-7 relative) with at most 1% of the outputs not bit-identical; and exactly the
// GPU's fp32 op on the widened inputs, rounded once (the rounding point), with as many kernel
// launches (native: no fp32 copies; odd head dims excepted, which take them; simulator only).
#include "core/bf16.h"
#include "core/device_counts.h"
#include "cuda_test_util.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

using namespace am;
using namespace am::test;

namespace {

AttnShape shape(int64_t H, int64_t Hkv, int64_t hd) {
  AttnShape s;
  s.B = 1;
  s.T = 1;
  s.n_heads = H;
  s.n_kv_heads = Hkv;
  s.head_dim = hd;
  return s;
}

// Host inputs of one case: q (1, H*hd), k and v caches (L, Hkv*hd) with rows >= n NaN.
struct Inputs {
  std::vector<float> q, k, v;
  int64_t L = 0;
};

Inputs make_inputs(const AttnShape& s, int64_t n, uint64_t seed) {
  Inputs in;
  in.L = n + 2;
  const size_t kv = size_t(in.L * s.kv_dim()), used = size_t(n * s.kv_dim());
  in.q = randn(size_t(s.q_dim()), seed, 1.5f);
  in.k = randn(kv, seed + 1);
  in.v = randn(kv, seed + 2);
  for (size_t i = used; i < kv; ++i) in.k[i] = in.v[i] = std::numeric_limits<float>::quiet_NaN();
  return in;
}

// The op on one backend with out and q of dtype dq, the caches of dtype dc; returns out as floats.
std::vector<float> run(Backend& be, const Inputs& in, const AttnShape& s, int64_t n, DType dq, DType dc) {
  auto make = [&](DType dt, std::vector<int64_t> shape, Buffer& buf) {
    Tensor t(nullptr, dt, shape);
    buf = be.alloc(t.nbytes() + 1);
    t.data = buf.get();
    return t;
  };
  Buffer bo, bq, bk, bv;
  const Tensor out = make(dq, {1, s.q_dim()}, bo), q = make(dq, {1, s.q_dim()}, bq);
  const Tensor k = make(dc, {in.L, s.kv_dim()}, bk), v = make(dc, {in.L, s.kv_dim()}, bv);
  upload_floats(be, q, in.q);
  upload_floats(be, k, in.k);
  upload_floats(be, v, in.v);
  upload_floats(be, out, std::vector<float>(size_t(s.q_dim()), NAN));  // "write": all overwritten
  be.attention_decode(out, q, k, v, n, s);
  return download_floats(be, out);
}

std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = bf16_round(x);
  return v;
}

struct Case {
  AttnShape s;
  int64_t n;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {shape(4, 4, 64), 1},     {shape(4, 4, 64), 7},  {shape(8, 2, 32), 300}, {shape(6, 1, 16), 40},
      {shape(2, 1, 33), 129},   {shape(3, 3, 48), 17}, {shape(2, 2, 128), 64}, {shape(2, 1, 256), 33},
      {shape(2, 1, 16), 13000},  // 52 KB of scores: above the default shared-memory limit
  };
  return c;
}

}  // namespace

TEST_CASE("cuda attention_decode: matches the CPU op (fp32, MHA, GQA, MQA, n from 1)", "[cuda][decode]") {
  Pair p;
  uint64_t seed = 100;
  for (const Case& c : cases()) {
    INFO("H=" << c.s.n_heads << " Hkv=" << c.s.n_kv_heads << " hd=" << c.s.head_dim << " n=" << c.n);
    const Inputs in = make_inputs(c.s, c.n, seed += 10);
    const std::vector<float> g = run(*p.gpu, in, c.s, c.n, DType::F32, DType::F32);
    require_close(g, run(*p.cpu, in, c.s, c.n, DType::F32, DType::F32), 1e-5, 1e-5);
    REQUIRE(g == run(*p.gpu, in, c.s, c.n, DType::F32, DType::F32));  // deterministic
  }
}

TEST_CASE("cuda attention_decode: bf16 storage rounds the output once, natively", "[cuda][decode][bf16]") {
  Pair p(true);
  uint64_t seed = 200;
  const DType H = DType::BF16, F = DType::F32;
  for (const Case& c : cases()) {
    INFO("H=" << c.s.n_heads << " Hkv=" << c.s.n_kv_heads << " hd=" << c.s.head_dim << " n=" << c.n);
    Inputs in = make_inputs(c.s, c.n, seed += 10);
    const std::vector<float> g = run(*p.gpu, in, c.s, c.n, H, H), cpu = run(*p.cpu, in, c.s, c.n, H, H);
    require_close(g, cpu, 1e-5 + 8e-3, 1e-5);
    size_t differ = 0;
    for (size_t i = 0; i < g.size(); ++i) differ += g[i] != cpu[i];
    CHECK(differ <= 1 + g.size() / 100);
    Inputs wide = in;  // the widenings of the BF16 inputs
    for (auto* v : {&wide.q, &wide.k, &wide.v}) *v = rounded(*v);
    REQUIRE(g == rounded(run(*p.gpu, wide, c.s, c.n, F, F)));
    // Mixed dtypes (an fp32 query and out, BF16 caches) go through fp32 copies: the same values.
    require_close(run(*p.gpu, in, c.s, c.n, F, H), run(*p.cpu, in, c.s, c.n, F, H), 1e-5, 1e-5);
    if (!device_counts()) continue;  // not the simulator: nothing counted
    reset_device_counts();
    run(*p.gpu, in, c.s, c.n, H, H);
    const uint64_t n16 = device_counts()->kernel_launches;
    reset_device_counts();
    run(*p.gpu, wide, c.s, c.n, F, F);
    const uint64_t n32 = device_counts()->kernel_launches;
    if (c.s.head_dim % 2 == 0) {
      CHECK(n16 == n32);
    } else {
      CHECK(n16 > n32);  // odd head dims: fp32 copies (cuda/attention_decode.cu)
    }
  }
}
