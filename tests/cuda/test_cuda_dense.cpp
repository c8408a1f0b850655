// CUDA vs the CPU reference (fp32 both) for the dense ops of cuda/dense.cu: embedding, RMSNorm,
// RoPE, SiLU and SwiGLU, forward and backward, on fresh random inputs and awkward shapes.
// Tolerances (|cuda - cpu| <= atol + rtol |cpu|):
//  - embedding forward and backward: exact (a copy; the gradient adds each token's rows in position
//    order in float on both sides, so even the rounding is the same);
//  - RMSNorm: 1e-5 relative, 1e-6 absolute (double sums in another order, then fp32 rounding);
//    dw 1e-5 relative, 1e-5 absolute (a reduction over every row); the fused residual + RMSNorm
//    (rmsnorm_residual_forward, one CUDA kernel vs the CPU's default add + rmsnorm_forward) the
//    same, its sum res_out exact (one float addition on both sides), and bit-identical to the
//    CUDA backend's own add + rmsnorm_forward;
//  - RoPE: 1e-6 relative, 1e-7 absolute (cos/sin and the rotation in double on both sides: at most
//    one fp32 rounding apart);
//  - SiLU / SwiGLU: 1e-5 relative, 1e-6 absolute (float expf: the device's is within 2 ulp).
// Reductions are also run twice on the device and must give the same bits.
#include "cuda_test_util.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

using namespace am;
using namespace am::test;

TEST_CASE("cuda embedding forward and backward match the CPU, with repeated tokens", "[cuda]") {
  Pair p;
  struct Shape {
    int64_t N, V, d;
  };
  // Small V against large N: every token repeats many times. d = 300 spans two column passes.
  for (const Shape s :
       {Shape{1, 1, 1}, Shape{37, 11, 70}, Shape{1000, 13, 129}, Shape{257, 5000, 300}, Shape{0, 7, 8}}) {
    INFO("N " << s.N << " V " << s.V << " d " << s.d);
    Twin tokens(p, {s.N}, random_ids(static_cast<size_t>(s.N), 0, static_cast<int32_t>(s.V), 100 + s.N));
    Twin table(p, {s.V, s.d}, randn(static_cast<size_t>(s.V * s.d), 1));
    Twin out(p, {s.N, s.d}, randn(static_cast<size_t>(s.N * s.d), 2));
    p.gpu->embedding_forward(out.g, tokens.g, table.g);
    p.cpu->embedding_forward(out.c, tokens.c, table.c);
    require_twin_close(p, out, 0, 0);

    const std::vector<float> dtable0 = randn(static_cast<size_t>(s.V * s.d), 3);
    Twin dtable(p, {s.V, s.d}, dtable0);
    Twin dout(p, {s.N, s.d}, randn(static_cast<size_t>(s.N * s.d), 4));
    p.gpu->embedding_backward(dtable.g, tokens.g, dout.g);
    p.cpu->embedding_backward(dtable.c, tokens.c, dout.c);
    const std::vector<float> first = dtable.from_gpu(p);
    require_close(first, dtable.from_cpu(p), 0, 0);

    // Determinism: the same accumulation from the same start gives the same bits.
    p.gpu->upload(dtable.g, dtable0.data());
    p.gpu->embedding_backward(dtable.g, tokens.g, dout.g);
    REQUIRE(dtable.from_gpu(p) == first);
  }
}

// Token ids are checked on the host before the upload (Transformer::forward; test_model.cpp), so
// the CUDA ops read nothing back; their guard: a bad id reads no table row, its output row is NaN
// (the loss turns non-finite) and its gradient row is dropped.
TEST_CASE("cuda embedding guards a token outside the vocabulary without a host read-back", "[cuda]") {
  Pair p;
  const int64_t N = 50, V = 10, d = 4;
  for (int32_t bad : {-1, 10, 1000, 15}) {
    INFO("bad token " << bad);
    std::vector<int32_t> ids = random_ids(N, 0, V, 5);
    ids[17] = bad;
    Twin tokens(p, {N}, ids);
    const std::vector<float> tab = randn(V * d, 6);
    Twin table(p, {V, d}, tab);
    Twin out(p, {N, d}, randn(N * d, 7));
    p.gpu->embedding_forward(out.g, tokens.g, table.g);
    const std::vector<float> o = out.from_gpu(p);
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t c = 0; c < d; ++c) {
        if (i == 17) {
          REQUIRE(std::isnan(o[i * d + c]));
        } else {
          REQUIRE(o[i * d + c] == tab[ids[i] * d + c]);
        }
      }
    }
    // Backward: the CPU with the bad token's gradient row zeroed onto a valid token gives the same bits.
    std::vector<float> dout = randn(N * d, 8);
    Twin dout_g(p, {N, d}, dout);
    std::vector<int32_t> ids_cpu = ids;
    ids_cpu[17] = 0;
    for (int64_t c = 0; c < d; ++c) dout[17 * d + c] = 0.0f;
    Twin tokens_cpu(p, {N}, ids_cpu), dout_c(p, {N, d}, dout);
    p.gpu->embedding_backward(table.g, tokens.g, dout_g.g);
    p.cpu->embedding_backward(table.c, tokens_cpu.c, dout_c.c);
    require_twin_close(p, table, 0, 0);
  }
}

TEST_CASE("cuda RMSNorm forward and backward match the CPU", "[cuda]") {
  Pair p;
  struct Shape {
    int64_t N, d;
  };
  // d: one element, not multiples of 32, one warp's worth, 128-thread and 512-thread blocks.
  for (const Shape s :
       {Shape{1, 1}, Shape{5, 33}, Shape{64, 100}, Shape{3, 64}, Shape{300, 1029}, Shape{130, 4096}, Shape{0, 16}}) {
    INFO("N " << s.N << " d " << s.d);
    const size_t nd = static_cast<size_t>(s.N * s.d), d = static_cast<size_t>(s.d);
    Twin x(p, {s.N, s.d}, randn(nd, 10, 2.f)), w(p, {s.d}, randn(d, 11));
    Twin out(p, {s.N, s.d}, randn(nd, 12)), rstd(p, {s.N}, randn(static_cast<size_t>(s.N), 13));
    p.gpu->rmsnorm_forward(out.g, rstd.g, x.g, w.g, 1e-5);
    p.cpu->rmsnorm_forward(out.c, rstd.c, x.c, w.c, 1e-5);
    require_twin_close(p, out, 1e-5, 1e-6);
    require_twin_close(p, rstd, 1e-5, 1e-6);

    const std::vector<float> dx0 = randn(nd, 14), dw0 = randn(d, 15);
    Twin dout(p, {s.N, s.d}, randn(nd, 16)), dx(p, {s.N, s.d}, dx0), dw(p, {s.d}, dw0);
    p.gpu->rmsnorm_backward(dx.g, dw.g, dout.g, x.g, w.g, rstd.g);
    p.cpu->rmsnorm_backward(dx.c, dw.c, dout.c, x.c, w.c, rstd.c);
    require_twin_close(p, dx, 1e-5, 1e-6);
    require_twin_close(p, dw, 1e-5, 1e-5);

    // Determinism of the row and column reductions.
    const std::vector<float> dx1 = dx.from_gpu(p), dw1 = dw.from_gpu(p);
    p.gpu->upload(dx.g, dx0.data());
    p.gpu->upload(dw.g, dw0.data());
    p.gpu->rmsnorm_backward(dx.g, dw.g, dout.g, x.g, w.g, rstd.g);
    REQUIRE(dx.from_gpu(p) == dx1);
    REQUIRE(dw.from_gpu(p) == dw1);
  }
}

TEST_CASE("cuda fused residual + RMSNorm matches the CPU composite and its own two kernels", "[cuda]") {
  Pair p;
  struct Shape {
    int64_t N, d;
  };
  for (const Shape s : {Shape{1, 1}, Shape{5, 33}, Shape{64, 100}, Shape{300, 1029}, Shape{7, 4096}, Shape{0, 16}}) {
    INFO("N " << s.N << " d " << s.d);
    const size_t nd = static_cast<size_t>(s.N * s.d), d = static_cast<size_t>(s.d);
    const std::vector<float> a0 = randn(nd, 70, 2.f), b0 = randn(nd, 71, 2.f);
    Twin a(p, {s.N, s.d}, a0), b(p, {s.N, s.d}, b0), w(p, {s.d}, randn(d, 72));
    Twin res(p, {s.N, s.d}, randn(nd, 73)), out(p, {s.N, s.d}, randn(nd, 74));
    Twin rstd(p, {s.N}, randn(static_cast<size_t>(s.N), 75));
    p.gpu->rmsnorm_residual_forward(res.g, out.g, rstd.g, a.g, b.g, w.g, 1e-5);
    p.cpu->rmsnorm_residual_forward(res.c, out.c, rstd.c, a.c, b.c, w.c, 1e-5);
    require_twin_close(p, res, 0, 0);
    require_twin_close(p, out, 1e-5, 1e-6);
    require_twin_close(p, rstd, 1e-5, 1e-6);
    const std::vector<float> res1 = res.from_gpu(p), out1 = out.from_gpu(p), rstd1 = rstd.from_gpu(p);

    // The fused kernel gives the bits of the CUDA backend's add + rmsnorm_forward.
    Twin res2(p, {s.N, s.d}, randn(nd, 76)), out2(p, {s.N, s.d}, randn(nd, 77));
    Twin rstd2(p, {s.N}, randn(static_cast<size_t>(s.N), 78));
    p.gpu->add(res2.g, a.g, b.g);
    p.gpu->rmsnorm_forward(out2.g, rstd2.g, res2.g, w.g, 1e-5);
    REQUIRE(res2.from_gpu(p) == res1);
    REQUIRE(out2.from_gpu(p) == out1);
    REQUIRE(rstd2.from_gpu(p) == rstd1);

    // In place, as the model calls it: res_out is a (res_mid += residual).
    p.gpu->rmsnorm_residual_forward(a.g, out2.g, rstd2.g, a.g, b.g, w.g, 1e-5);
    REQUIRE(a.from_gpu(p) == res1);
    REQUIRE(out2.from_gpu(p) == out1);
    p.gpu->upload(a.g, a0.data());
    p.gpu->rmsnorm_residual_forward(b.g, out2.g, rstd2.g, a.g, b.g, w.g, 1e-5);  // res_out is b
    REQUIRE(b.from_gpu(p) == res1);
    REQUIRE(out2.from_gpu(p) == out1);
  }
}

TEST_CASE("cuda RMSNorm dw over many rows matches the CPU", "[cuda]") {
  Pair p;
  const int64_t N = 5000, d = 96;  // 40 row chunks of the column reduction
  std::vector<float> r = randn(N, 24);
  for (float& v : r) v = std::abs(v) + 0.5f;  // any positive rstd: the backward takes it as given
  Twin x(p, {N, d}, randn(N * d, 20)), w(p, {d}, randn(d, 21)), dout(p, {N, d}, randn(N * d, 22));
  Twin rstd(p, {N}, r);
  Twin dx(p, {N, d}, std::vector<float>(static_cast<size_t>(N * d), 0.f));
  Twin dw(p, {d}, std::vector<float>(static_cast<size_t>(d), 0.f));
  p.gpu->rmsnorm_backward(dx.g, dw.g, dout.g, x.g, w.g, rstd.g);
  p.cpu->rmsnorm_backward(dx.c, dw.c, dout.c, x.c, w.c, rstd.c);
  require_twin_close(p, dw, 1e-5, 1e-4);
  require_twin_close(p, dx, 1e-5, 1e-6);
}

TEST_CASE("cuda RoPE forward and backward match the CPU and invert each other", "[cuda]") {
  Pair p;
  struct Case {
    AttnShape s;
    double theta;
  };
  std::vector<Case> cases;
  cases.push_back({AttnShape{1, 1, 1, 1, 2}, 10000.0});
  cases.push_back({AttnShape{2, 37, 4, 2, 16}, 10000.0});     // grouped kv heads
  cases.push_back({AttnShape{1, 300, 3, 3, 6}, 500000.0});    // hd/2 odd, long sequence
  cases.push_back({AttnShape{2, 2048, 2, 1, 128}, 10000.0});  // large angles (t up to 2047)
  for (const Case& c : cases) {
    const AttnShape& s = c.s;
    INFO("B " << s.B << " T " << s.T << " H " << s.n_heads << " Hkv " << s.n_kv_heads << " hd " << s.head_dim);
    const int64_t rows = s.B * s.T, n = rows * s.qkv_dim();
    const std::vector<float> x0 = randn(static_cast<size_t>(n), 30);
    Twin qkv(p, {s.B, s.T, s.qkv_dim()}, x0);
    p.gpu->rope_forward(qkv.g, s, c.theta);
    p.cpu->rope_forward(qkv.c, s, c.theta);
    require_twin_close(p, qkv, 1e-6, 1e-7);  // the v part is untouched on both sides

    Twin d(p, {rows, s.qkv_dim()}, randn(static_cast<size_t>(n), 31));
    p.gpu->rope_backward(d.g, s, c.theta);
    p.cpu->rope_backward(d.c, s, c.theta);
    require_twin_close(p, d, 1e-6, 1e-7);

    // The backward rotation is the inverse of the forward one.
    p.gpu->rope_backward(qkv.g, s, c.theta);
    require_close(qkv.from_gpu(p), x0, 1e-5, 1e-5);
  }
  AttnShape odd{1, 4, 2, 2, 5};
  Twin bad(p, {4, odd.qkv_dim()}, randn(static_cast<size_t>(4 * odd.qkv_dim()), 32));
  REQUIRE_THROWS_AS(p.gpu->rope_forward(bad.g, odd, 10000.0), InternalError);
}

TEST_CASE("cuda SiLU and SwiGLU forward and backward match the CPU", "[cuda]") {
  Pair p;
  struct Shape {
    int64_t M, f;
  };
  for (const Shape s : {Shape{1, 1}, Shape{3, 1000}, Shape{77, 513}, Shape{0, 8}}) {
    INFO("M " << s.M << " f " << s.f);
    const size_t n = static_cast<size_t>(s.M * s.f);
    std::vector<float> xg = randn(n, 40, 4.f);
    if (n >= 4) {  // the saturated ends of the sigmoid
      xg[0] = 100.f;
      xg[1] = -100.f;
      xg[2] = 0.f;
      xg[3] = -30.f;
    }
    Twin x(p, {s.M, s.f}, xg), u(p, {s.M, s.f}, randn(n, 41)), y(p, {s.M, s.f}, randn(n, 42));
    p.gpu->silu_forward(y.g, x.g);
    p.cpu->silu_forward(y.c, x.c);
    require_twin_close(p, y, 1e-5, 1e-6);

    Twin dy(p, {s.M, s.f}, randn(n, 43)), dx(p, {s.M, s.f}, randn(n, 44));
    p.gpu->silu_backward(dx.g, dy.g, x.g);
    p.cpu->silu_backward(dx.c, dy.c, x.c);
    require_twin_close(p, dx, 1e-5, 1e-6);

    Twin h(p, {s.M, s.f}, randn(n, 45));
    p.gpu->swiglu_forward(h.g, x.g, u.g);
    p.cpu->swiglu_forward(h.c, x.c, u.c);
    require_twin_close(p, h, 1e-5, 1e-6);

    Twin dh(p, {s.M, s.f}, randn(n, 46)), dg(p, {s.M, s.f}, randn(n, 47)), du(p, {s.M, s.f}, randn(n, 48));
    p.gpu->swiglu_backward(dg.g, du.g, dh.g, x.g, u.g);
    p.cpu->swiglu_backward(dg.c, du.c, dh.c, x.c, u.c);
    require_twin_close(p, dg, 1e-5, 1e-6);
    require_twin_close(p, du, 1e-5, 1e-6);
  }
}
