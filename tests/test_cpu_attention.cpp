// CPU backend: RoPE (against a complex-number rotation) and causal attention (against a naive
// masked softmax written here), causality, grouped-query heads, and gradients.
#include "test_cpu_util.h"

#include "cpu/ops_attention_bf16.h"

#include <cmath>
#include <complex>
#include <limits>

using namespace am;
using namespace am::test;

namespace {

AttnShape shape(int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t hd) {
  AttnShape s;
  s.B = B;
  s.T = T;
  s.n_heads = H;
  s.n_kv_heads = Hkv;
  s.head_dim = hd;
  return s;
}

// qkv element (b, t, column).
double at(const Tensor& qkv, const AttnShape& s, int64_t b, int64_t t, int64_t col) {
  return d64(qkv)[(b * s.T + t) * s.qkv_dim() + col];
}

}  // namespace

TEST_CASE("cpu rope: forward is a complex rotation of (x[i], x[i+hd/2]), v untouched", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(20);
  const AttnShape s = shape(2, 5, 2, 1, 8);
  const double theta = 500.0;
  Tensor qkv = ar.randn({s.B, s.T, s.qkv_dim()}, rng);
  Tensor x0 = ar.clone(qkv);
  be.rope_forward(qkv, s, theta);
  const int64_t half = s.head_dim / 2;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.T; ++t) {
      for (int64_t h = 0; h < s.n_heads + s.n_kv_heads; ++h)  // q heads then the k head
        for (int64_t i = 0; i < half; ++i) {
          const int64_t c = h * s.head_dim + i;
          const std::complex<double> z(at(x0, s, b, t, c), at(x0, s, b, t, c + half));
          const double angle = static_cast<double>(t) / std::pow(theta, 2.0 * i / s.head_dim);
          const std::complex<double> r = z * std::polar(1.0, angle);
          CHECK(at(qkv, s, b, t, c) == Approx(r.real()).epsilon(1e-13).margin(1e-15));
          CHECK(at(qkv, s, b, t, c + half) == Approx(r.imag()).epsilon(1e-13).margin(1e-15));
        }
      for (int64_t c = s.q_dim() + s.kv_dim(); c < s.qkv_dim(); ++c) CHECK(at(qkv, s, b, t, c) == at(x0, s, b, t, c));
    }
  // rope_backward is the inverse rotation: applying it restores the input.
  be.rope_backward(qkv, s, theta);
  for (int64_t i = 0; i < qkv.numel(); ++i) CHECK(d64(qkv)[i] == Approx(d64(x0)[i]).margin(1e-14));
}

TEST_CASE("cpu rope: gradient of sum(R * rope(qkv))", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(21);
  const AttnShape s = shape(2, 4, 2, 2, 6);
  Tensor qkv = ar.randn({s.B, s.T, s.qkv_dim()}, rng), R = ar.randn({s.B, s.T, s.qkv_dim()}, rng);
  Tensor tmp = ar.f({s.B, s.T, s.qkv_dim()});
  auto loss = [&] {
    be.copy(tmp, qkv);
    be.rope_forward(tmp, s, 10000.0);
    return weighted_sum(R, tmp);
  };
  Tensor g = ar.clone(R);
  be.rope_backward(g, s, 10000.0);
  check_gradient(loss, d64(qkv), d64(g), qkv.numel(), {.max_entries = 0, .what = "rope dqkv"});
}

TEST_CASE("cpu attention: forward and lse against a naive masked softmax, with GQA", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(22);
  const AttnShape s = shape(2, 7, 4, 2, 4);
  Tensor qkv = ar.randn({s.B, s.T, s.qkv_dim()}, rng);
  Tensor out = ar.f({s.B, s.T, s.q_dim()}), lse = ar.f({s.B, s.n_heads, s.T});
  be.attention_forward(out, lse, qkv, s);
  const double scale = 1.0 / std::sqrt(4.0);
  const int64_t hd = s.head_dim;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.n_heads; ++h) {
      const int64_t kv = h / 2;  // H / Hkv = 2 query heads per kv head
      for (int64_t t = 0; t < s.T; ++t) {
        // Masked scores over every position, then a plain softmax.
        std::vector<double> score(s.T), p(s.T);
        for (int64_t u = 0; u < s.T; ++u) {
          double dot = 0;
          for (int64_t i = 0; i < hd; ++i)
            dot += at(qkv, s, b, t, h * hd + i) * at(qkv, s, b, u, s.q_dim() + kv * hd + i);
          score[u] = u <= t ? dot * scale : -std::numeric_limits<double>::infinity();
        }
        double z = 0;
        for (int64_t u = 0; u < s.T; ++u) z += std::exp(score[u]);
        CHECK(d64(lse)[(b * s.n_heads + h) * s.T + t] == Approx(std::log(z)).epsilon(1e-13));
        for (int64_t i = 0; i < hd; ++i) {
          double o = 0;
          for (int64_t u = 0; u < s.T; ++u)
            o += std::exp(score[u]) / z * at(qkv, s, b, u, s.q_dim() + s.kv_dim() + kv * hd + i);
          CHECK(d64(out)[(b * s.T + t) * s.q_dim() + h * hd + i] == Approx(o).epsilon(1e-12).margin(1e-14));
        }
      }
    }
}

TEST_CASE("cpu attention: changing a future k/v leaves earlier outputs unchanged", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  Arena ar(be);
  std::mt19937_64 rng(23);
  const AttnShape s = shape(1, 7, 4, 2, 4);
  Tensor qkv = ar.randn({s.B, s.T, s.qkv_dim()}, rng);
  Tensor out = ar.f({s.B, s.T, s.q_dim()}), lse = ar.f({s.B, s.n_heads, s.T});
  be.attention_forward(out, lse, qkv, s);
  const std::vector<double> before = to_vector(out);
  const int64_t t0 = 4;
  for (int64_t c = s.q_dim(); c < s.qkv_dim(); ++c) d64(qkv)[t0 * s.qkv_dim() + c] += 1.5;
  be.attention_forward(out, lse, qkv, s);
  for (int64_t t = 0; t < s.T; ++t) {
    bool same = true;
    for (int64_t c = 0; c < s.q_dim(); ++c) same = same && before[t * s.q_dim() + c] == d64(out)[t * s.q_dim() + c];
    INFO("position " << t);
    CHECK(same == (t < t0));
  }
}

TEST_CASE("cpu attention: gradient with respect to qkv (MHA, GQA, MQA)", "[cpu]") {
  CpuBackend be(DType::F64, 2);
  std::mt19937_64 rng(24);
  for (const AttnShape& s : {shape(2, 7, 4, 2, 4), shape(1, 5, 2, 2, 6), shape(2, 6, 3, 1, 4)}) {
    Arena ar(be);
    Tensor qkv = ar.randn({s.B, s.T, s.qkv_dim()}, rng);
    Tensor out = ar.f({s.B, s.T, s.q_dim()}), lse = ar.f({s.B, s.n_heads, s.T});
    Tensor R = ar.randn({s.B, s.T, s.q_dim()}, rng);
    auto loss = [&] {
      be.attention_forward(out, lse, qkv, s);
      return weighted_sum(R, out);
    };
    loss();
    Tensor dqkv = ar.f({s.B, s.T, s.qkv_dim()});
    for (int64_t i = 0; i < dqkv.numel(); ++i) d64(dqkv)[i] = NAN;  // "write": all overwritten
    be.attention_backward(dqkv, R, qkv, out, lse, s);
    const std::string tag = "attention dqkv H=" + std::to_string(s.n_heads) + " Hkv=" + std::to_string(s.n_kv_heads);
    check_gradient(loss, d64(qkv), d64(dqkv), qkv.numel(), {.max_entries = 0, .what = tag});
  }
}

// The CPU emulation of the tensor-core kernels' rounding points (run.precision: bf16,
// cpu/ops_attention_bf16.h). Its structure is checked exact: with rounding off, in double, it must
// be attention (finite differences); with rounding on it must stay within bf16's error of the
// fp64 op and differ from it (the rounding happens).
TEST_CASE("cpu bf16 attention: without rounding it is exact attention (gradient check)", "[cpu][bf16]") {
  CpuBackend be(DType::F64, 2);
  std::mt19937_64 rng(25);
  for (const AttnShape& s : {shape(2, 7, 4, 2, 4), shape(2, 6, 3, 1, 4)}) {
    Arena ar(be);
    Tensor qkv = ar.randn({s.B, s.T, s.qkv_dim()}, rng);
    Tensor out = ar.f({s.B, s.T, s.q_dim()}), lse = ar.f({s.B, s.n_heads, s.T});
    Tensor ref_out = ar.f({s.B, s.T, s.q_dim()}), ref_lse = ar.f({s.B, s.n_heads, s.T});
    Tensor R = ar.randn({s.B, s.T, s.q_dim()}, rng);
    auto loss = [&] {
      cpu::attention_forward_bf16<double>(d64(out), d64(lse), d64(qkv), s, false);
      return weighted_sum(R, out);
    };
    loss();
    be.attention_forward(ref_out, ref_lse, qkv, s);
    for (int64_t i = 0; i < out.numel(); ++i) CHECK(d64(out)[i] == Approx(d64(ref_out)[i]).margin(1e-14));
    for (int64_t i = 0; i < lse.numel(); ++i) CHECK(d64(lse)[i] == Approx(d64(ref_lse)[i]).margin(1e-14));
    Tensor dqkv = ar.f({s.B, s.T, s.qkv_dim()});
    for (int64_t i = 0; i < dqkv.numel(); ++i) d64(dqkv)[i] = NAN;  // "write": all overwritten
    cpu::attention_backward_bf16<double>(d64(dqkv), d64(R), d64(qkv), d64(out), d64(lse), s, false);
    check_gradient(loss, d64(qkv), d64(dqkv), qkv.numel(), {.max_entries = 0, .what = "bf16 attention (unrounded)"});
  }
}

TEST_CASE("cpu bf16 attention: a bf16 backend rounds, within bf16's error of fp64", "[cpu][bf16]") {
  const AttnShape s = shape(2, 37, 4, 2, 16);
  CpuBackend f64(DType::F64, 1), bf(DType::F32, 1, /*bf16_matmul=*/true), f32(DType::F32, 1);
  std::mt19937_64 rng(26);
  std::normal_distribution<double> nd;
  std::vector<double> qkv(size_t(s.B * s.T * s.qkv_dim())), dout(size_t(s.B * s.T * s.q_dim()));
  for (auto& x : qkv) x = nd(rng);
  for (auto& x : dout) x = nd(rng);
  // Runs forward and backward on `be` (F64 or F32 tensors), returns out, lse, dqkv as doubles.
  auto run = [&](CpuBackend& be) {
    Arena ar(be);
    Tensor x = ar.f({s.B * s.T, s.qkv_dim()}), g = ar.f({s.B * s.T, s.q_dim()});
    for (int64_t i = 0; i < x.numel(); ++i) Arena::set(x, i, qkv[size_t(i)]);
    for (int64_t i = 0; i < g.numel(); ++i) Arena::set(g, i, dout[size_t(i)]);
    Tensor o = ar.f({s.B * s.T, s.q_dim()}), l = ar.f({s.B, s.n_heads, s.T}), dx = ar.f({s.B * s.T, s.qkv_dim()});
    be.attention_forward(o, l, x, s);
    be.attention_backward(dx, g, x, o, l, s);
    std::vector<std::vector<double>> all;
    for (const Tensor& t : {o, l, dx}) {
      all.emplace_back();
      for (int64_t i = 0; i < t.numel(); ++i) all.back().push_back(Arena::get(t, i));
    }
    return all;
  };
  const auto ref = run(f64), b16 = run(bf), plain = run(f32);
  // Per tensor (out, lse, dqkv): the largest difference relative to the largest entry.
  for (size_t t = 0; t < ref.size(); ++t) {
    INFO("tensor " << t << " (out, lse, dqkv)");
    double big = 0, worst = 0, worst32 = 0;
    for (size_t i = 0; i < ref[t].size(); ++i) {
      big = std::max(big, std::abs(ref[t][i]));
      worst = std::max(worst, std::abs(b16[t][i] - ref[t][i]));
      worst32 = std::max(worst32, std::abs(plain[t][i] - ref[t][i]));
    }
    worst /= big;
    worst32 /= big;
    CHECK(worst32 < 1e-5);  // fp32 without bf16: attention as before
    CHECK(worst > 1e-4);    // the rounding happens ...
    CHECK(worst < 2e-2);    // ... at bf16's precision (2^-9 relative per operand)
  }
}
