// bf16 storage (core/backend.h): the CUDA kernels that read and write BF16 tensors themselves
// (CudaBackend::native_bf16, "native bf16: kernels"): the RMSNorm forwards, RoPE, SwiGLU and
// cross-entropy. Each op runs with BF16 arguments where the model passes them (and other
// combinations) on the CUDA backend and on the CPU reference, which widens them to fp32, runs the
// fp32 op and rounds each BF16 output once (Backend::with_f32). Three checks per combination:
//  - parity with the CPU: fp32 outputs within the fp32 tolerance of the op's fp32 parity test
//    (test_cuda_dense.cpp, test_cuda_rows.cpp); BF16 outputs within that plus rtol 8e-3 (the fp32
//    values before the rounding may straddle a rounding boundary and land on neighbouring bf16
//    values, one bf16 ulp = at most 2^-7 relative), and all but 1% of them bit-identical (the fp32
//    values agree to about 1e-6, so they rarely straddle one: an output rounded at another point,
//    or not rounded, fails this);
//  - the rounding point: exact. The CUDA op on BF16 tensors gives the bits of the CUDA fp32 op on
//    their widenings with each BF16 output rounded to bf16 once (the same kernel code, so the same
//    fp32 values before the rounding);
//  - native: the simulator counts as many kernel launches for the op on the BF16 tensors as on fp32
//    ones (the with_f32 fallback adds convert launches); a combination the kernels do not template
//    (the op's own fp32 fallback) counts more. Simulator only (the counters).
#include "core/bf16.h"
#include "core/device_counts.h"
#include "cuda_test_util.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

using namespace am;
using namespace am::test;

namespace {

constexpr DType F = DType::F32, H = DType::BF16, I = DType::I32;

// One argument: its dtype (F32, BF16 or I32), shape and host values (rounded to bf16 for BF16,
// truncated to int for I32).
struct Spec {
  DType dt;
  std::vector<int64_t> shape;
  std::vector<float> host;
};

// A tensor on one backend holding a Spec's values.
struct Arg {
  Buffer buf;
  Tensor t;
  Arg(Backend& be, const Spec& s) {
    t = Tensor(nullptr, s.dt, s.shape);
    buf = be.alloc(t.nbytes() + 1);
    t.data = buf.get();
    if (s.dt == I) {
      const std::vector<int32_t> ids(s.host.begin(), s.host.end());
      be.upload(t, ids.data());
    } else {
      upload_floats(be, t, s.host);
    }
  }
  std::vector<float> read(Backend& be) const { return download_floats(be, t); }
};

using Op = std::function<void(Backend&, const std::vector<Tensor>&)>;

// The op on fresh tensors of the specs; returns them.
std::vector<Arg> run(Backend& be, const Op& op, const std::vector<Spec>& specs) {
  std::vector<Arg> args;
  std::vector<Tensor> ts;
  for (const Spec& s : specs) args.emplace_back(be, s);
  for (const Arg& a : args) ts.push_back(a.t);
  op(be, ts);
  return args;
}

uint64_t kernels(Backend& be, const Op& op, const std::vector<Spec>& specs) {
  std::vector<Arg> args;
  std::vector<Tensor> ts;
  for (const Spec& s : specs) args.emplace_back(be, s);
  for (const Arg& a : args) ts.push_back(a.t);
  reset_device_counts();
  op(be, ts);
  return device_counts()->kernel_launches;
}

struct Out {
  size_t arg;         // which argument is written
  double rtol, atol;  // the fp32 tolerance
};

// The three checks of the header for `op` on arguments `specs`; `native`: the combination is one
// the kernels template.
void check(const std::string& what, const Op& op, const std::vector<Spec>& specs, const std::vector<Out>& outs,
           bool native) {
  INFO(what);
  Pair p(true);
  const std::vector<Arg> g = run(*p.gpu, op, specs), c = run(*p.cpu, op, specs);
  std::vector<Spec> wide = specs;  // the fp32 widenings
  for (Spec& s : wide) {
    if (s.dt != H) continue;
    s.dt = F;
    for (float& v : s.host) v = bf16_round(v);
  }
  const std::vector<Arg> w = run(*p.gpu, op, wide);
  for (const Out& o : outs) {
    INFO("argument " << o.arg);
    const std::vector<float> a = g[o.arg].read(*p.gpu), b = c[o.arg].read(*p.cpu);
    const bool bf16 = specs[o.arg].dt == H;
    require_close(a, b, o.rtol + (bf16 ? 8e-3 : 0.0), o.atol);
    size_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
    if (bf16) CHECK(differ <= 1 + a.size() / 100);
    std::vector<float> expect = w[o.arg].read(*p.gpu);
    if (bf16) {
      for (float& v : expect) v = bf16_round(v);
    }
    REQUIRE(a == expect);
  }
  if (!device_counts()) return;  // not the simulator: nothing counted
  const uint64_t n16 = kernels(*p.gpu, op, specs), n32 = kernels(*p.gpu, op, wide);
  INFO("kernel launches: " << n16 << " with BF16 tensors, " << n32 << " on fp32 ones");
  if (native) {
    REQUIRE(n16 == n32);
  } else {
    REQUIRE(n16 > n32);
  }
}

std::vector<float> targets_with_ignored(int64_t N, int64_t V, uint64_t seed) {
  std::vector<int32_t> ids = random_ids(static_cast<size_t>(N), 0, static_cast<int32_t>(V), seed);
  for (int64_t i = 0; i < N; i += 5) ids[static_cast<size_t>(i)] = -1;
  return std::vector<float>(ids.begin(), ids.end());
}

}  // namespace

TEST_CASE("cuda native bf16: RMSNorm forwards round their output once", "[cuda][bf16]") {
  const int64_t N = 37;
  for (const int64_t d : {8, 300, 1500}) {  // the three row block sizes
    INFO("d " << d);
    const size_t n = static_cast<size_t>(N * d);
    const std::vector<float> x = randn(n, 1), w = randn(static_cast<size_t>(d), 2), b = randn(n, 3), out = randn(n, 4),
                             rstd = randn(static_cast<size_t>(N), 5);
    const double eps = 1e-5;
    // [out, rstd, x, w]
    const Op fwd = [&](Backend& be, const std::vector<Tensor>& t) { be.rmsnorm_forward(t[0], t[1], t[2], t[3], eps); };
    const auto specs = [&](DType o, DType r, DType xi) {
      return std::vector<Spec>{{o, {N, d}, out}, {r, {N}, rstd}, {xi, {N, d}, x}, {F, {d}, w}};
    };
    const std::vector<Out> outs = {{0, 1e-5, 1e-6}, {1, 1e-5, 1e-6}};
    check("rmsnorm_forward out BF16 (the model)", fwd, specs(H, F, F), outs, true);
    check("rmsnorm_forward out, x BF16", fwd, specs(H, F, H), outs, true);
    check("rmsnorm_forward x BF16", fwd, specs(F, F, H), outs, true);
    check("rmsnorm_forward rstd BF16 (fp32 fallback)", fwd, specs(H, H, F), outs, false);

    // [res_out = a, out, rstd, b, w], res_out in place of a as in the model
    const Op res = [&](Backend& be, const std::vector<Tensor>& t) {
      be.rmsnorm_residual_forward(t[0], t[1], t[2], t[0], t[3], t[4], eps);
    };
    const auto rspecs = [&](DType r, DType o, DType bi) {
      return std::vector<Spec>{{r, {N, d}, x}, {o, {N, d}, out}, {F, {N}, rstd}, {bi, {N, d}, b}, {F, {d}, w}};
    };
    const std::vector<Out> routs = {{0, 0, 0}, {1, 1e-5, 1e-6}, {2, 1e-5, 1e-6}};
    check("rmsnorm_residual_forward out BF16 (the model)", res, rspecs(F, H, F), routs, true);
    check("rmsnorm_residual_forward b BF16 (fp32 fallback)", res, rspecs(F, H, H), routs, false);
    check("rmsnorm_residual_forward res_out = a BF16 (fp32 fallback)", res, rspecs(H, H, F), routs, false);
  }
}

TEST_CASE("cuda native bf16: RoPE forward and backward on a BF16 qkv", "[cuda][bf16]") {
  for (const AttnShape s : {AttnShape{2, 5, 4, 2, 8}, AttnShape{1, 33, 3, 3, 16}}) {
    INFO("B " << s.B << " T " << s.T << " heads " << s.n_heads << " kv " << s.n_kv_heads << " hd " << s.head_dim);
    const std::vector<float> qkv = randn(static_cast<size_t>(s.B * s.T * s.qkv_dim()), 10);
    const std::vector<Spec> specs = {{H, {s.B, s.T, s.qkv_dim()}, qkv}};
    const Op fwd = [&](Backend& be, const std::vector<Tensor>& t) { be.rope_forward(t[0], s, 10000.0); };
    const Op bwd = [&](Backend& be, const std::vector<Tensor>& t) { be.rope_backward(t[0], s, 500.0); };
    check("rope_forward", fwd, specs, {{0, 1e-6, 1e-7}}, true);
    check("rope_backward", bwd, specs, {{0, 1e-6, 1e-7}}, true);
  }
}

TEST_CASE("cuda native bf16: SwiGLU forward and backward", "[cuda][bf16]") {
  const int64_t M = 41, f = 300;
  const size_t n = static_cast<size_t>(M * f);
  std::vector<float> g = randn(n, 20, 4.f);
  g[0] = 100.f;  // the saturated ends of the sigmoid
  g[1] = -100.f;
  g[2] = 0.f;
  const std::vector<float> u = randn(n, 21), h = randn(n, 22), dh = randn(n, 23), dg = randn(n, 24), du = randn(n, 25);
  // [h, g, u]
  const Op fwd = [](Backend& be, const std::vector<Tensor>& t) { be.swiglu_forward(t[0], t[1], t[2]); };
  const auto fspecs = [&](DType th, DType tg, DType tu) {
    return std::vector<Spec>{{th, {M, f}, h}, {tg, {M, f}, g}, {tu, {M, f}, u}};
  };
  const std::vector<Out> fouts = {{0, 1e-5, 1e-6}};
  check("swiglu_forward h, g, u BF16 (the experts)", fwd, fspecs(H, H, H), fouts, true);
  check("swiglu_forward g, u BF16", fwd, fspecs(F, H, H), fouts, true);
  check("swiglu_forward h, u BF16", fwd, fspecs(H, F, H), fouts, true);

  // [dg, du, dh, g, u]
  const Op bwd = [](Backend& be, const std::vector<Tensor>& t) { be.swiglu_backward(t[0], t[1], t[2], t[3], t[4]); };
  const auto bspecs = [&](DType td, DType tdh, DType tg, DType tu) {
    return std::vector<Spec>{{td, {M, f}, dg}, {td, {M, f}, du}, {tdh, {M, f}, dh}, {tg, {M, f}, g}, {tu, {M, f}, u}};
  };
  const std::vector<Out> bouts = {{0, 1e-5, 1e-6}, {1, 1e-5, 1e-6}};
  check("swiglu_backward g, u BF16 (the experts)", bwd, bspecs(F, F, H, H), bouts, true);
  check("swiglu_backward all BF16", bwd, bspecs(H, H, H, H), bouts, true);
  check("swiglu_backward g BF16, u F32 (fp32 fallback)", bwd, bspecs(F, F, H, F), bouts, false);
  check("swiglu_backward dg, du BF16, dh F32 (fp32 fallback)", bwd, bspecs(H, F, H, H), bouts, false);
}

TEST_CASE("cuda native bf16: cross-entropy on BF16 logits, the fused classifier writing a BF16 gradient",
          "[cuda][bf16]") {
  const int64_t N = 13;
  for (const int64_t V : {50, 700, 3000}) {  // the three row block sizes
    INFO("V " << V);
    const std::vector<float> logits = randn(static_cast<size_t>(N * V), 30, 3.f),
                             grad = randn(static_cast<size_t>(N * V), 31), losses = randn(static_cast<size_t>(N), 32),
                             targets = targets_with_ignored(N, V, 33);
    const double scale = 1.0 / 7;
    // [losses, logits, targets]
    const auto lspecs = [&](DType tl, DType tz) {
      return std::vector<Spec>{{tl, {N}, losses}, {tz, {N, V}, logits}, {I, {N}, targets}};
    };
    const Op fwd = [](Backend& be, const std::vector<Tensor>& t) { be.cross_entropy_forward(t[0], t[1], t[2]); };
    check("cross_entropy_forward logits BF16", fwd, lspecs(F, H), {{0, 1e-5, 1e-5}, {1, 0, 0}}, true);
    check("cross_entropy_forward losses BF16 (fp32 fallback)", fwd, lspecs(H, H), {{0, 1e-5, 1e-5}}, false);
    const Op fused = [&](Backend& be, const std::vector<Tensor>& t) {
      be.cross_entropy_forward_backward(t[0], t[1], t[2], scale);
    };
    const std::vector<Out> fouts = {{0, 1e-5, 1e-5}, {1, 1e-5, 1e-9}};
    check("cross_entropy_forward_backward logits BF16 (the model)", fused, lspecs(F, H), fouts, true);
    check("cross_entropy_forward_backward losses BF16 (fp32 fallback)", fused, lspecs(H, H), fouts, false);

    // [dlogits, logits, targets]
    const auto bspecs = [&](DType td, DType tz) {
      return std::vector<Spec>{{td, {N, V}, grad}, {tz, {N, V}, logits}, {I, {N}, targets}};
    };
    const Op bwd = [&](Backend& be, const std::vector<Tensor>& t) {
      be.cross_entropy_backward(t[0], t[1], t[2], scale);
    };
    const std::vector<Out> bouts = {{0, 1e-5, 1e-9}, {1, 0, 0}};
    check("cross_entropy_backward logits BF16", bwd, bspecs(F, H), bouts, true);
    check("cross_entropy_backward dlogits, logits BF16", bwd, bspecs(H, H), bouts, true);
    check("cross_entropy_backward dlogits BF16", bwd, bspecs(H, F), bouts, true);
    const Op in_place = [&](Backend& be, const std::vector<Tensor>& t) {
      be.cross_entropy_backward(t[1], t[1], t[2], scale);
    };
    check("cross_entropy_backward in place on BF16 logits", in_place, bspecs(F, H), {{1, 1e-5, 1e-9}}, true);
  }
}
