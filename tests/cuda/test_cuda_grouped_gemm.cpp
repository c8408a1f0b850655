// CUDA's grouped matmul (one cublasGemmGroupedBatchedEx in fp32, cuda/grouped_gemm.cu, the
// simulator's in cuda/sim/cublas.cpp; one cublasGemmEx per problem under bf16) vs the CPU's loop of matmul, in the
// experts' patterns: row blocks of one activation matrix times per-expert weights (forward, input gradient) and weight
// gradients (transposed a, beta 1), empty experts, more problems than one call takes. Tolerances as for matmul: fp32
// 1e-4 relative, 1e-5 absolute; bf16 operands 1e-4 relative and absolute.
#include "cuda_test_util.h"

#include <catch2/catch.hpp>

#include <vector>

using namespace am;
using namespace am::test;

namespace {

// Expert-major rows: expert e owns rows [off[e], off[e+1]) of x (A, K); weights w_e (N, K) lie
// back to back in one buffer `w` (n*N*K, + 16 leading floats so that offsets are not 0).
struct Experts {
  std::vector<int64_t> off;
  int64_t K, N;
  Twin x, w, y, dy, dw;
  Experts(Pair& p, std::vector<int64_t> offsets, int64_t k, int64_t n, uint64_t seed)
      : off(std::move(offsets)),
        K(k),
        N(n),
        x(p, {off.back(), K}, randn(static_cast<size_t>(off.back() * K), seed)),
        w(p, {static_cast<int64_t>(off.size() - 1) * N * K + 16},
          randn(static_cast<size_t>((off.size() - 1) * N * K + 16), seed + 1)),
        y(p, {off.back(), N}, randn(static_cast<size_t>(off.back() * N), seed + 2)),
        dy(p, {off.back(), N}, randn(static_cast<size_t>(off.back() * N), seed + 3)),
        dw(p, {static_cast<int64_t>(off.size() - 1) * N * K},
           randn(static_cast<size_t>((off.size() - 1) * N * K), seed + 4)) {}
  int n() const { return static_cast<int>(off.size()) - 1; }
  Tensor weight(const Tensor& buf, int e) const {
    return Tensor(static_cast<float*>(buf.data) + 16 + e * N * K, DType::F32, {N, K});
  }
  Tensor grad(const Tensor& buf, int e) const {
    return Tensor(static_cast<float*>(buf.data) + e * N * K, DType::F32, {N, K});
  }
  Tensor rows(const Tensor& t, int e) const { return t.rows(off[e], off[e + 1] - off[e]); }

  // y_e = x_e w_e^T;  dw_e += dy_e^T x_e;  x_e = dy_e w_e (overwrites x: last), on backend side g or c
  void run(Backend& be, bool gpu) {
    const Tensor X = gpu ? x.g : x.c, W = gpu ? w.g : w.c, Y = gpu ? y.g : y.c, DY = gpu ? dy.g : dy.c;
    const Tensor DW = gpu ? dw.g : dw.c;
    std::vector<Tensor> xs, ws, ys, dys, dws;
    for (int e = 0; e < n(); ++e) {
      xs.push_back(rows(X, e));
      ws.push_back(weight(W, e));
      ys.push_back(rows(Y, e));
      dys.push_back(rows(DY, e));
      dws.push_back(grad(DW, e));
    }
    be.matmul_grouped(ys, xs, false, ws, true, 1.0, 0.0);
    be.matmul_grouped(dws, dys, true, xs, false, 0.5, 1.0);
    be.matmul_grouped(xs, dys, false, ws, false, 1.0, 0.0);
  }
  void compare(Pair& p, double rtol, double atol) {
    require_close(y.from_gpu(p), y.from_cpu(p), rtol, atol);
    require_close(dw.from_gpu(p), dw.from_cpu(p), rtol, atol);
    require_close(x.from_gpu(p), x.from_cpu(p), rtol, atol);
  }
};

}  // namespace

TEST_CASE("cuda matmul_grouped matches the CPU's per-expert matmuls, empty experts included", "[cuda]") {
  Pair p;
  Experts ex(p, {0, 3, 3, 20, 21, 61}, 24, 10, 5);  // expert 1 empty
  ex.run(*p.gpu, true);
  ex.run(*p.cpu, false);
  ex.compare(p, 1e-4, 1e-5);
}

TEST_CASE("cuda matmul_grouped splits more problems than one call takes", "[cuda]") {
  Pair p;
  std::vector<int64_t> off = {0};
  for (int e = 0; e < 70; ++e) off.push_back(off.back() + 1 + e % 3);  // 70 experts of 1 to 3 rows
  Experts ex(p, off, 6, 5, 9);
  ex.run(*p.gpu, true);
  ex.run(*p.cpu, false);
  ex.compare(p, 1e-4, 1e-5);
}

TEST_CASE("cuda bf16 matmul_grouped matches the CPU's bf16 emulation, weight copy and row-block casts",
          "[cuda][bf16]") {
  Pair p(/*bf16_matmul=*/true);
  Experts ex(p, {0, 5, 5, 37, 40}, 40, 12, 13);
  // The weights inside the master buffer: read from the bf16 weight copy; x, dy row blocks: one cast.
  p.gpu->refresh_weight_copy(ex.w.g);
  p.cpu->refresh_weight_copy(ex.w.c);
  ex.run(*p.gpu, true);
  ex.run(*p.cpu, false);
  ex.compare(p, 1e-4, 1e-4);
  // Row blocks that do not tile one range (experts 0 and 3): cast one by one, same values.
  std::vector<Tensor> xs_g, ws_g, ys_g, xs_c, ws_c, ys_c;
  for (int e = 0; e < ex.n(); e += 3) {
    xs_g.push_back(ex.rows(ex.x.g, e)), ws_g.push_back(ex.weight(ex.w.g, e)), ys_g.push_back(ex.rows(ex.y.g, e));
    xs_c.push_back(ex.rows(ex.x.c, e)), ws_c.push_back(ex.weight(ex.w.c, e)), ys_c.push_back(ex.rows(ex.y.c, e));
  }
  p.gpu->matmul_grouped(ys_g, xs_g, false, ws_g, true, 1.0, 0.0);
  p.cpu->matmul_grouped(ys_c, xs_c, false, ws_c, true, 1.0, 0.0);
  require_close(ex.y.from_gpu(p), ex.y.from_cpu(p), 1e-4, 1e-4);
  p.gpu->refresh_weight_copy(Tensor());
  p.cpu->refresh_weight_copy(Tensor());
}
