// CPU backend timings (hidden from ctest: run `build/tests/autonomoe_tests "[cpu-bench]"`).
// Prints the best-of-n time of representative forward + backward calls in F32, with the thread
// count from AM_BENCH_THREADS (default: all cores). Best-of-n because the machine may be shared.
#include "test_cpu_util.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

using namespace am;
using namespace am::test;

namespace {

template <typename F>
double best_ms(int reps, F&& f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return best;
}

}  // namespace

TEST_CASE("cpu timings of representative ops", "[.][cpu-bench]") {
  const char* env = std::getenv("AM_BENCH_THREADS");
  CpuBackend be(DType::F32, env ? std::atoi(env) : 0);
  Arena ar(be);
  std::mt19937_64 rng(70);
  std::printf("%s\n", be.describe().c_str());

  AttnShape s;
  s.B = 16;
  s.T = 128;
  s.n_heads = 4;
  s.n_kv_heads = 4;
  s.head_dim = 32;
  Tensor qkv = ar.randn({s.B, s.T, s.qkv_dim()}, rng), dout = ar.randn({s.B, s.T, s.q_dim()}, rng);
  Tensor o = ar.f({s.B, s.T, s.q_dim()}), lse = ar.f({s.B, s.n_heads, s.T});
  Tensor dqkv = ar.f({s.B, s.T, s.qkv_dim()});
  const double fwd = best_ms(15, [&] { be.attention_forward(o, lse, qkv, s); });
  const double bwd = best_ms(15, [&] { be.attention_backward(dqkv, dout, qkv, o, lse, s); });
  std::printf("attention B=16 T=128 H=4 hd=32: forward %.2f ms, backward %.2f ms\n", fwd, bwd);

  const int64_t M = 2048, K = 128, N = 512;
  Tensor a = ar.randn({M, K}, rng), w = ar.randn({N, K}, rng), c = ar.f({M, N});
  Tensor dc = ar.randn({M, N}, rng), da = ar.f({M, K}), dw = ar.f({N, K});
  const double mf = best_ms(15, [&] { be.matmul(c, a, false, w, true, 1, 0); });
  const double mb = best_ms(15, [&] {
    be.matmul(da, dc, false, w, false, 1, 0);
    be.matmul(dw, dc, true, a, false, 1, 1);
  });
  const double gflop = 2.0 * M * N * K * 1e-9;
  std::printf(
      "matmul 2048x128x512 (x W^T): forward %.2f ms (%.1f GFLOP/s), backward %.2f ms "
      "(%.1f GFLOP/s)\n",
      mf, gflop / mf * 1e3, mb, 2 * gflop / mb * 1e3);

  const int64_t T = 2048, V = 8192;
  {  // LM head: logits (T,V) = x (T,d) W^T, and its backward
    Tensor x = ar.randn({T, K}, rng), wv = ar.randn({V, K}, rng), lg = ar.f({T, V});
    Tensor dx = ar.f({T, K}), dwv = ar.f({V, K});
    const double hf = best_ms(5, [&] { be.matmul(lg, x, false, wv, true, 1, 0); });
    const double hb = best_ms(5, [&] {
      be.matmul(dx, lg, false, wv, false, 1, 0);
      be.matmul(dwv, lg, true, x, false, 1, 1);
    });
    const double g = 2.0 * T * V * K * 1e-9;
    std::printf(
        "matmul LM head 2048x128 -> 8192: forward %.2f ms (%.1f GFLOP/s), backward %.2f ms "
        "(%.1f GFLOP/s)\n",
        hf, g / hf * 1e3, hb, 2 * g / hb * 1e3);
  }
  Tensor logits = ar.randn({T, V}, rng), losses = ar.f({T});
  std::vector<int32_t> tg(T);
  for (auto& t : tg) t = static_cast<int32_t>(rng() % V);
  Tensor targets = ar.i32({T}, tg);
  const double ce = best_ms(8, [&] { be.cross_entropy_forward_backward(losses, logits, targets, 1.0 / T); });
  std::printf("cross-entropy forward+backward 2048 x 8192: %.2f ms\n", ce);

  const int64_t d = 128;
  Tensor x = ar.randn({T, d}, rng), g = ar.randn({d}, rng), y = ar.f({T, d}), r = ar.f({T});
  Tensor dx = ar.f({T, d}), dg = ar.f({d});
  const double rn = best_ms(15, [&] {
    be.rmsnorm_forward(y, r, x, g, 1e-5);
    be.rmsnorm_backward(dx, dg, y, x, g, r);
  });
  std::printf("rmsnorm forward+backward 2048 x 128: %.3f ms\n", rn);
  const int64_t f = 512;
  Tensor sg = ar.randn({T, f}, rng), su = ar.randn({T, f}, rng), h = ar.f({T, f});
  Tensor dsg = ar.f({T, f}), dsu = ar.f({T, f});
  const double sw = best_ms(15, [&] {
    be.swiglu_forward(h, sg, su);
    be.swiglu_backward(dsg, dsu, h, sg, su);
  });
  std::printf("swiglu forward+backward 2048 x 512: %.3f ms\n", sw);
  {
    const int64_t P = 8 << 20;
    Tensor p = ar.randn({P}, rng), gr = ar.randn({P}, rng), m = ar.f({P}), v = ar.f({P});
    AdamWStep st;
    st.lr = 1e-3;
    const double ad = best_ms(5, [&] { be.adamw_update(p, gr, m, v, st); });
    std::printf("adamw 8M parameters: %.2f ms\n", ad);
  }
  CHECK(fwd > 0);
}
