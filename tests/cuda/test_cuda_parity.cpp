// CUDA backend vs the CPU reference, op by op, on fresh random inputs (fp32 on both sides).
// Tolerances: GEMMs 1e-4 relative (different summation order over K), element-wise ops 1e-6,
// sum of squares 1e-9 relative (both accumulate in double). bf16 GEMMs (run.precision: bf16)
// against the CPU's exact emulation: both round the operands to the same bf16 values and the
// products are exact, so only the fp32 summation differs: 1e-4 relative + 1e-4 absolute.
#include "cuda_test_util.h"

#include <catch2/catch.hpp>

#include <random>
#include <vector>

using namespace am;
using namespace am::test;

namespace {

// c = 0.7 op(a) op(b) + 0.3 c on both backends, for the four transpose combinations.
void check_matmul_transposes(Pair& p, int64_t M, int64_t K, int64_t N, uint64_t seed, double rtol, double atol) {
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      Twin a(p, ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K}, randn(M * K, seed + ta));
      Twin b(p, tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N}, randn(K * N, seed + 2 + tb));
      Twin c(p, {M, N}, randn(M * N, seed + 4));
      p.gpu->matmul(c.g, a.g, ta, b.g, tb, 0.7, 0.3);
      p.cpu->matmul(c.c, a.c, ta, b.c, tb, 0.7, 0.3);
      INFO("trans_a " << ta << " trans_b " << tb);
      require_close(c.from_gpu(p), c.from_cpu(p), rtol, atol);
    }
  }
}

}  // namespace

TEST_CASE("cuda matmul matches the CPU for every transpose combination", "[cuda]") {
  Pair p;
  check_matmul_transposes(p, 37, 53, 29, 1, 1e-4, 1e-5);
}

TEST_CASE("cuda bf16 matmul matches the CPU's bf16 emulation, with and without the weight copy", "[cuda][bf16]") {
  Pair p(/*bf16_matmul=*/true);
  REQUIRE(p.gpu->bf16_matmul());
  const int64_t M = 70, K = 300, N = 45;
  check_matmul_transposes(p, M, K, N, 11, 1e-4, 1e-4);
  // b inside a registered master buffer: read from the bf16 weight copy, same result.
  Twin master(p, {K * N + 64}, randn(K * N + 64, 17));
  const Tensor wg(static_cast<float*>(master.g.data) + 64, DType::F32, {N, K});
  const Tensor wc(static_cast<float*>(master.c.data) + 64, DType::F32, {N, K});
  Twin x(p, {M, K}, randn(M * K, 19));
  Twin per_call(p, {M, N}, randn(M * N, 21)), cached(p, {M, N}, randn(M * N, 23));
  p.gpu->matmul(per_call.g, x.g, false, wg, true, 1.0, 0.0);
  p.gpu->refresh_weight_copy(master.g);
  p.cpu->refresh_weight_copy(master.c);
  p.gpu->matmul(cached.g, x.g, false, wg, true, 1.0, 0.0);
  p.cpu->matmul(cached.c, x.c, false, wc, true, 1.0, 0.0);
  CHECK(cached.from_gpu(p) == per_call.from_gpu(p));  // the same bf16 values either way: bitwise
  require_close(cached.from_gpu(p), cached.from_cpu(p), 1e-4, 1e-4);
  p.gpu->refresh_weight_copy(Tensor());
  p.cpu->refresh_weight_copy(Tensor());
}

TEST_CASE("cuda element-wise ops, sum of squares and AdamW match the CPU", "[cuda]") {
  Pair p;
  const int64_t n = 100003;
  Twin x(p, {n}, randn(n, 7)), y(p, {n}, randn(n, 8)), out(p, {n}, randn(n, 9));
  p.gpu->add(out.g, x.g, y.g);
  p.cpu->add(out.c, x.c, y.c);
  require_close(out.from_gpu(p), out.from_cpu(p), 1e-6, 1e-7);
  p.gpu->axpy(y.g, x.g, -0.25);
  p.cpu->axpy(y.c, x.c, -0.25);
  require_close(y.from_gpu(p), y.from_cpu(p), 1e-6, 1e-7);
  p.gpu->scale(y.g, 1.5);
  p.cpu->scale(y.c, 1.5);
  require_close(y.from_gpu(p), y.from_cpu(p), 1e-6, 1e-7);
  CHECK(p.gpu->sum_squares(x.g) == Approx(p.cpu->sum_squares(x.c)).epsilon(1e-9));

  Twin param(p, {n}, randn(n, 10)), grad(p, {n}, randn(n, 11));
  std::vector<float> zeros(static_cast<size_t>(n), 0.f);
  Twin m(p, {n}, zeros), v(p, {n}, zeros);
  AdamWStep s;
  s.lr = 1e-2;
  s.weight_decay = 0.1;
  s.grad_scale = 0.5;
  for (int step = 1; step <= 3; ++step) {
    s.step = step;
    p.gpu->adamw_update(param.g, grad.g, m.g, v.g, s);
    p.cpu->adamw_update(param.c, grad.c, m.c, v.c, s);
  }
  require_close(param.from_gpu(p), param.from_cpu(p), 1e-5, 1e-6);
  require_close(v.from_gpu(p), v.from_cpu(p), 1e-5, 1e-7);
}
