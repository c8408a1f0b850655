// CPU backend: the KV-cache decoder's ops. attention_decode (one query row against a cache) is row
// n-1 of attention_forward over the same n positions, and rope_forward with a start position
// rotates a row as the full sequence's RoPE rotates it at that position. fp64: |diff| <= 1e-12
// (the same sums in the same order; in practice the same bits).
#include "test_cpu_util.h"

#include <cmath>
#include <limits>

using namespace am;
using namespace am::test;

namespace {

AttnShape shape(int64_t T, int64_t H, int64_t Hkv, int64_t hd) {
  AttnShape s;
  s.B = 1;
  s.T = T;
  s.n_heads = H;
  s.n_kv_heads = Hkv;
  s.head_dim = hd;
  return s;
}

// The worst |attention_decode - row n-1 of attention_forward| over n positions of random rotated
// q/k/v rows, the caches holding L > n rows (those past n NaN: the op must not read them).
double decode_vs_forward(CpuBackend& be, const AttnShape& base, int64_t n, std::mt19937_64& rng) {
  Arena ar(be);
  AttnShape s = base;
  s.T = n;
  const int64_t L = n + 3, qd = s.q_dim(), kd = s.kv_dim(), row = s.qkv_dim();
  Tensor qkv = ar.randn({1, n, row}, rng, 1.5);
  Tensor out = ar.f({1, n, qd}), lse = ar.f({1, s.n_heads, n});
  be.attention_forward(out, lse, qkv, s);
  Tensor kc = ar.f({L, kd}), vc = ar.f({L, kd}), q = ar.f({1, qd}), got = ar.f({1, qd});
  for (int64_t i = 0; i < L * kd; ++i) Arena::set(kc, i, std::numeric_limits<double>::quiet_NaN());
  for (int64_t i = 0; i < L * kd; ++i) Arena::set(vc, i, std::numeric_limits<double>::quiet_NaN());
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < kd; ++c) {
      Arena::set(kc, j * kd + c, Arena::get(qkv, j * row + qd + c));
      Arena::set(vc, j * kd + c, Arena::get(qkv, j * row + qd + kd + c));
    }
  for (int64_t c = 0; c < qd; ++c) Arena::set(q, c, Arena::get(qkv, (n - 1) * row + c));
  for (int64_t c = 0; c < qd; ++c) Arena::set(got, c, NAN);  // "write": all overwritten
  be.attention_decode(got, q, kc, vc, n, s);
  double worst = 0;
  for (int64_t c = 0; c < qd; ++c) {
    const double d = std::abs(Arena::get(got, c) - Arena::get(out, (n - 1) * qd + c));
    worst = std::isnan(d) ? INFINITY : std::max(worst, d);
  }
  return worst;
}

}  // namespace

TEST_CASE("cpu attention_decode: equals the last row of attention_forward (MHA, GQA, MQA, n from 1)", "[cpu][decode]") {
  CpuBackend be(DType::F64, 2);
  std::mt19937_64 rng(31);
  for (const AttnShape& s : {shape(0, 4, 4, 8), shape(0, 4, 2, 6), shape(0, 6, 1, 4), shape(0, 2, 1, 33)}) {
    for (int64_t n : {1, 2, 5, 13, 40}) {
      const double worst = decode_vs_forward(be, s, n, rng);
      INFO("H=" << s.n_heads << " Hkv=" << s.n_kv_heads << " hd=" << s.head_dim << " n=" << n << ": worst " << worst);
      CHECK(worst <= 1e-12);
    }
  }
}

TEST_CASE("cpu attention_decode: fp32 equals the last row of attention_forward", "[cpu][decode]") {
  CpuBackend be(DType::F32, 1);
  std::mt19937_64 rng(32);
  for (int64_t n : {1, 7, 30}) CHECK(decode_vs_forward(be, shape(0, 4, 2, 16), n, rng) <= 1e-6);
}

TEST_CASE("cpu attention_decode: a wrong query row or a missing position shows", "[cpu][decode]") {
  // Guards the test above: a decode over n - 1 positions differs from the forward's row n - 1.
  CpuBackend be(DType::F64, 1);
  Arena ar(be);
  std::mt19937_64 rng(33);
  const AttnShape s = shape(6, 2, 1, 4);
  Tensor qkv = ar.randn({1, s.T, s.qkv_dim()}, rng);
  Tensor out = ar.f({1, s.T, s.q_dim()}), lse = ar.f({1, s.n_heads, s.T}), got = ar.f({1, s.q_dim()});
  be.attention_forward(out, lse, qkv, s);
  Tensor kc = ar.f({s.T, s.kv_dim()}), vc = ar.f({s.T, s.kv_dim()}), q = ar.f({1, s.q_dim()});
  for (int64_t j = 0; j < s.T; ++j)
    for (int64_t c = 0; c < s.kv_dim(); ++c) {
      Arena::set(kc, j * s.kv_dim() + c, Arena::get(qkv, j * s.qkv_dim() + s.q_dim() + c));
      Arena::set(vc, j * s.kv_dim() + c, Arena::get(qkv, j * s.qkv_dim() + s.q_dim() + s.kv_dim() + c));
    }
  for (int64_t c = 0; c < s.q_dim(); ++c) Arena::set(q, c, Arena::get(qkv, (s.T - 1) * s.qkv_dim() + c));
  be.attention_decode(got, q, kc, vc, s.T - 1, s);
  double diff = 0;
  for (int64_t c = 0; c < s.q_dim(); ++c)
    diff = std::max(diff, std::abs(Arena::get(got, c) - Arena::get(out, (s.T - 1) * s.q_dim() + c)));
  CHECK(diff > 1e-3);
}

TEST_CASE("cpu attention_decode: bad positions and cache shapes are refused", "[cpu][decode]") {
  CpuBackend be(DType::F64, 1);
  Arena ar(be);
  const AttnShape s = shape(1, 4, 2, 4);
  Tensor out = ar.f({1, s.q_dim()}), q = ar.f({1, s.q_dim()});
  Tensor kc = ar.f({5, s.kv_dim()}), vc = ar.f({5, s.kv_dim()}), wide = ar.f({5, s.q_dim()}),
         short_v = ar.f({4, s.kv_dim()});
  CHECK_NOTHROW(be.attention_decode(out, q, kc, vc, 5, s));
  CHECK_THROWS(be.attention_decode(out, q, kc, vc, 0, s));
  CHECK_THROWS(be.attention_decode(out, q, kc, vc, 6, s));
  CHECK_THROWS(be.attention_decode(out, q, wide, vc, 1, s));
  CHECK_THROWS(be.attention_decode(out, q, kc, short_v, 1, s));
  CHECK_THROWS(be.attention_decode(out, kc.rows(0, 1), kc, vc, 1, s));
}

TEST_CASE("cpu rope: a row rotated at start position t equals row t of the sequence's RoPE", "[cpu][decode]") {
  CpuBackend be(DType::F64, 1);
  Arena ar(be);
  std::mt19937_64 rng(34);
  const AttnShape s = shape(9, 4, 2, 8);
  Tensor qkv = ar.randn({1, s.T, s.qkv_dim()}, rng);
  Tensor rows = ar.clone(qkv);
  be.rope_forward(qkv, s, 1000.0);
  AttnShape one = s;
  one.T = 1;
  for (int64_t t = 0; t < s.T; ++t) {
    Tensor r = rows.reshape({s.T, s.qkv_dim()}).rows(t, 1);
    be.rope_forward(r, one, 1000.0, t);
    bool same = true;
    for (int64_t c = 0; c < s.qkv_dim(); ++c) same = same && d64(r)[c] == d64(qkv)[t * s.qkv_dim() + c];
    INFO("position " << t);
    CHECK(same);
  }
  CHECK_THROWS(be.rope_forward(rows.reshape({s.T, s.qkv_dim()}).rows(0, 1), one, 1000.0, -1));
}
