// bf16 storage (core/backend.h, issue 11 point 2) of the matrix products and tensor-core attention:
// CudaBackend names matmul, attention_forward and attention_backward in native_bf16, so its
// kernels and cuBLAS calls read and write BF16 tensors themselves; matmul_grouped (a plain virtual)
// takes them too. Each is compared with the CPU, whose ops go through Backend::with_f32 (BF16
// inputs widened exactly, the fp32 op, each BF16 output rounded once): the spec.
// Tolerances (|cuda - cpu| per entry):
//  - matmul and matmul_grouped, fp32 c: 1e-5 of the largest |cpu| entry + 1e-5 relative: both
//    sides sum the same exact products of bf16 operands in fp32 (K <= 70 terms), in another order;
//  - a BF16 output: one bf16 ulp more (8e-3 relative: the neighbouring bf16 value, ulp <= 2^-7 of
//    it), since an fp32 difference of one ulp can cross a rounding boundary;
//  - attention: attention_tc's tolerances relative to the largest |cpu| entry (out 2e-3, lse 2e-4,
//    dqkv 1e-3, its header says why), plus 8e-3 |cpu| for a BF16 out.
// And the native paths are checked to be native: the simulator counts the kernel launches of each
// op on BF16 tensors, which must equal those on F32 ones (attention) or the operand casts the GEMM
// still needs (matmul: one per fp32 operand outside the weight copy); Backend::with_f32's fallback
// would add a convert per BF16 tensor. Counts are simulator only.
#include "core/bf16.h"
#include "core/device_counts.h"
#include "cuda_test_util.h"

#include <cublas_v2.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

using namespace am;
using namespace am::test;

namespace {

constexpr double kUlp = 8e-3;  // one bf16 ulp, relative (<= 2^-7)

// A tensor on each backend of dtype F32 or BF16 holding the same values (rounded to bf16 first
// when BF16).
struct Arg : FloatTwin {
  Arg(Pair& p, const std::vector<int64_t>& shape, DType dt, const std::vector<float>& host)
      : FloatTwin(p, dt, shape, host) {}
};

DType dt(bool bf16) { return bf16 ? DType::BF16 : DType::F32; }
const char* name(bool bf16) { return bf16 ? "BF16" : "F32"; }

std::vector<float> nans(int64_t n) {
  return std::vector<float>(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
}

DeviceCounts counted(Backend& be, const std::function<void()>& f) {
  be.synchronize();
  reset_device_counts();
  f();
  return *device_counts();
}

// |g - c| <= rel_max * max|c| + rel * |c| for every entry (false for NaN).
void require_near(const std::vector<float>& g, const std::vector<float>& c, double rel_max, double rel) {
  REQUIRE(g.size() == c.size());
  double big = 0;
  for (float x : c) big = std::max(big, double(std::abs(x)));
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("entry " << i << ": cuda " << g[i] << " cpu " << c[i] << " (largest |cpu| " << big << ")");
    REQUIRE(std::abs(double(g[i]) - c[i]) <= rel_max * big + rel * std::abs(double(c[i])));
  }
}

}  // namespace

TEST_CASE("bf16 storage: matmul with every F32/BF16 mix of a, b, c and both transposes", "[cuda][bf16]") {
  Pair p(/*bf16_matmul=*/true);
  const int64_t M = 37, K = 70, N = 29;
  uint64_t seed = 100;
  for (int mix = 0; mix < 8; ++mix) {
    const bool a16 = mix & 1, b16 = mix & 2, c16 = mix & 4;
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      for (double beta : {0.0, 0.5}) {
        INFO("a " << name(a16) << (ta ? "^T" : "") << " b " << name(b16) << (tb ? "^T" : "") << " c " << name(c16)
                  << " beta " << beta);
        Arg a(p, ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K}, dt(a16), randn(M * K, ++seed));
        Arg b(p, tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N}, dt(b16), randn(K * N, ++seed));
        // beta 0 overwrites c whatever it held: NaN then.
        Arg c(p, {M, N}, dt(c16), beta == 0 ? nans(M * N) : randn(M * N, ++seed));
        p.cpu->matmul(c.c, a.c, ta, b.c, tb, 0.75, beta);
        const DeviceCounts n = counted(*p.gpu, [&] { p.gpu->matmul(c.g, a.g, ta, b.g, tb, 0.75, beta); });
        require_near(c.gpu(p), c.cpu(p), 1e-5, 1e-5 + (c16 ? kUlp : 0.0));
        // one cast kernel per fp32 operand (none in the weight copy here), then the GEMM
        const uint64_t casts = (a16 ? 0 : 1) + (b16 ? 0 : 1);
        CHECK(n.kernel_launches == casts);
        CHECK(n.launches == casts + 1);
      }
    }
  }
}

TEST_CASE("bf16 storage: matmul reads fp32 weights from the weight copy next to BF16 activations", "[cuda][bf16]") {
  Pair p(/*bf16_matmul=*/true);
  const int64_t M = 19, K = 48, N = 40;
  Arg w(p, {N * K + 8}, DType::F32, randn(N * K + 8, 7));  // the "master weights"
  p.gpu->refresh_weight_copy(w.g);
  p.cpu->refresh_weight_copy(w.c);
  const Tensor wg(static_cast<float*>(w.g.data) + 8, DType::F32, {N, K});
  const Tensor wc(static_cast<float*>(w.c.data) + 8, DType::F32, {N, K});
  Arg x(p, {M, K}, DType::BF16, randn(M * K, 8));
  Arg y(p, {M, N}, DType::BF16, nans(M * N));
  p.cpu->matmul(y.c, x.c, false, wc, true, 1.0, 0.0);
  const DeviceCounts n = counted(*p.gpu, [&] { p.gpu->matmul(y.g, x.g, false, wg, true, 1.0, 0.0); });
  require_near(y.gpu(p), y.cpu(p), 1e-5, 1e-5 + kUlp);
  CHECK(n.kernel_launches == 0);  // no cast, no convert: the GEMM alone
  CHECK(n.launches == 1);
  p.gpu->refresh_weight_copy(Tensor());
  p.cpu->refresh_weight_copy(Tensor());
}

TEST_CASE("bf16 storage: matmul_grouped with BF16 activations in the experts' patterns", "[cuda][bf16]") {
  Pair p(/*bf16_matmul=*/true);
  const std::vector<int64_t> off = {0, 5, 5, 17, 30};  // expert 1 empty
  const int n = 4;
  const int64_t K = 24, N = 20, rows = off.back();
  for (bool act16 : {true, false}) {
    INFO("activations " << name(act16));
    Arg x(p, {rows, K}, dt(act16), randn(rows * K, 21));
    Arg w(p, {n * N * K}, DType::F32, randn(n * N * K, 22));
    Arg y(p, {rows, N}, dt(act16), nans(rows * N));
    Arg dy(p, {rows, N}, DType::F32, randn(rows * N, 23));
    Arg dw(p, {n * N * K}, DType::F32, randn(n * N * K, 24));
    Arg a(p, {rows, N}, dt(act16), randn(rows * N, 25));  // a BF16 "b" operand: SwiGLU's act
    Arg z(p, {rows, K}, dt(act16), nans(rows * K));
    auto run = [&](Backend& be, bool gpu) {
      auto pick = [&](const Arg& t) { return gpu ? t.g : t.c; };
      std::vector<Tensor> xs, ws, ys, dys, dws, as, zs;
      for (int e = 0; e < n; ++e) {
        const int64_t r0 = off[e], nr = off[e + 1] - off[e];
        xs.push_back(pick(x).rows(r0, nr));
        ys.push_back(pick(y).rows(r0, nr));
        dys.push_back(pick(dy).rows(r0, nr));
        as.push_back(pick(a).rows(r0, nr));
        zs.push_back(pick(z).rows(r0, nr));
        ws.push_back(Tensor(static_cast<float*>(pick(w).data) + e * N * K, DType::F32, {N, K}));
        dws.push_back(Tensor(static_cast<float*>(pick(dw).data) + e * N * K, DType::F32, {N, K}));
      }
      be.matmul_grouped(ys, xs, false, ws, true, 1.0, 0.0);    // y (BF16) = x w^T
      be.matmul_grouped(dws, dys, true, xs, false, 0.5, 1.0);  // dw (F32) += dy^T x (x BF16)
      be.matmul_grouped(zs, as, false, ws, false, 1.0, 0.0);   // z (BF16) = a w
    };
    run(*p.cpu, false);
    run(*p.gpu, true);
    const double abs = 1e-5;
    require_near(y.gpu(p), y.cpu(p), abs, 1e-5 + (act16 ? kUlp : 0.0));
    require_near(dw.gpu(p), dw.cpu(p), abs, 1e-5);
    require_near(z.gpu(p), z.cpu(p), abs, 1e-5 + (act16 ? kUlp : 0.0));
  }
  // BF16 a, b and c of three live problems: one launch, the tensor-core grouped GEMM (no cast, no
  // convert, no cuBLAS call).
  Arg x(p, {rows, K}, DType::BF16, randn(rows * K, 31));
  Arg w(p, {n * N * K}, DType::BF16, randn(n * N * K, 32));
  Arg y(p, {rows, N}, DType::BF16, nans(rows * N));
  std::vector<Tensor> xs, ws, ys;
  for (int e = 0; e < n; ++e) {
    xs.push_back(x.g.rows(off[e], off[e + 1] - off[e]));
    ys.push_back(y.g.rows(off[e], off[e + 1] - off[e]));
    ws.push_back(Tensor(static_cast<uint16_t*>(w.g.data) + e * N * K, DType::BF16, {N, K}));
  }
  const DeviceCounts c = counted(*p.gpu, [&] { p.gpu->matmul_grouped(ys, xs, false, ws, true, 1.0, 0.0); });
  CHECK(c.kernel_launches == 1);
  CHECK(c.launches == 1);
}

namespace {

struct AttnCase {
  int64_t B, T, H, Hkv, hd;
  bool qkv16, out16, lse16 = false, dout16 = false, dqkv16 = false;
};

void check_attention(const AttnCase& k, uint64_t seed) {
  INFO("B " << k.B << " T " << k.T << " H " << k.H << " Hkv " << k.Hkv << " hd " << k.hd << " qkv " << name(k.qkv16)
            << " out " << name(k.out16) << " lse " << name(k.lse16) << " dout " << name(k.dout16) << " dqkv "
            << name(k.dqkv16));
  Pair p(/*bf16_matmul=*/true);
  AttnShape s;
  s.B = k.B;
  s.T = k.T;
  s.n_heads = k.H;
  s.n_kv_heads = k.Hkv;
  s.head_dim = k.hd;
  const int64_t BT = k.B * k.T;
  Arg qkv(p, {BT, s.qkv_dim()}, dt(k.qkv16), randn(BT * s.qkv_dim(), seed));
  Arg out(p, {BT, s.q_dim()}, dt(k.out16), nans(BT * s.q_dim()));
  Arg lse(p, {k.B, k.H, k.T}, dt(k.lse16), nans(k.B * k.H * k.T));
  Arg dout(p, {BT, s.q_dim()}, dt(k.dout16), randn(BT * s.q_dim(), seed + 1));
  Arg dqkv(p, {BT, s.qkv_dim()}, dt(k.dqkv16), nans(BT * s.qkv_dim()));
  p.cpu->attention_forward(out.c, lse.c, qkv.c, s);
  const DeviceCounts fwd = counted(*p.gpu, [&] { p.gpu->attention_forward(out.g, lse.g, qkv.g, s); });
  {
    INFO("out");
    require_near(out.gpu(p), out.cpu(p), 2e-3, k.out16 ? kUlp : 0.0);
  }
  {
    INFO("lse");
    require_near(lse.gpu(p), lse.cpu(p), 2e-4, k.lse16 ? kUlp : 0.0);
  }
  // The backward on both sides reads the CPU forward's out and lse (the same bits: same dtypes).
  {
    std::vector<uint8_t> raw(out.c.nbytes()), raw_lse(lse.c.nbytes());
    p.cpu->download(raw.data(), out.c);
    p.gpu->upload(out.g, raw.data());
    p.cpu->download(raw_lse.data(), lse.c);
    p.gpu->upload(lse.g, raw_lse.data());
  }
  p.cpu->attention_backward(dqkv.c, dout.c, qkv.c, out.c, lse.c, s);
  const DeviceCounts bwd = counted(*p.gpu, [&] { p.gpu->attention_backward(dqkv.g, dout.g, qkv.g, out.g, lse.g, s); });
  {
    INFO("dqkv");
    require_near(dqkv.gpu(p), dqkv.cpu(p), 1e-3, k.dqkv16 ? kUlp : 0.0);
  }
  // Native: qkv and out of either dtype cost the kernels of the fp32 tensors (forward 1, backward
  // delta + dK/dV + dQ); each other BF16 argument, and a BF16 out of an odd head dim, one convert.
  if (!device_counts()) return;
  const bool staged_out = k.out16 && k.hd % 2 != 0;
  CHECK(fwd.kernel_launches == 1u + (k.lse16 ? 1u : 0u) + (staged_out ? 1u : 0u));
  CHECK(bwd.kernel_launches == 3u + (k.lse16 ? 1u : 0u) + (k.dout16 ? 1u : 0u) + (k.dqkv16 ? 1u : 0u));
}

}  // namespace

TEST_CASE("bf16 storage: tensor-core attention reads BF16 qkv and out, writes BF16 out", "[cuda][bf16]") {
  uint64_t seed = 500;
  for (int mix = 0; mix < 4; ++mix) {
    check_attention({2, 100, 4, 2, 32, bool(mix & 1), bool(mix & 2)}, ++seed);
  }
  check_attention({1, 70, 2, 1, 64, true, true}, ++seed);                    // the model's case, another head dim
  check_attention({1, 40, 2, 2, 15, true, true}, ++seed);                    // odd head dim: out through an fp32 copy
  check_attention({1, 40, 2, 1, 32, true, true, true, true, true}, ++seed);  // every argument BF16
}

// cublasGemmEx's type combinations under CUBLAS_COMPUTE_32F (cuBLAS's table; the simulator
// follows it, cuda/sim/cublas.cpp): bf16 A and B with a bf16 or fp32 C, and fp32 A, B, C run;
// A and B of different types, or fp32 A/B with a bf16 C, are CUBLAS_STATUS_NOT_SUPPORTED.
TEST_CASE("cublasGemmEx takes cuBLAS's bf16 and fp32 type combinations and refuses the mixes", "[cuda][bf16]") {
  auto be = make_cuda_backend(DType::F32, 0, true);
  const int n = 8;
  Buffer a = be->alloc(4 * n * n), b = be->alloc(4 * n * n), c = be->alloc(4 * n * n);
  const std::vector<float> ones(n * n, 1.f);
  for (Buffer* x : {&a, &b, &c}) be->upload(Tensor(x->get(), DType::F32, {n, n}), ones.data());
  cublasHandle_t h = nullptr;
  REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
  const float one = 1.f, zero = 0.f;
  auto gemm = [&](cudaDataType at, cudaDataType bt, cudaDataType ct) {
    return cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.get(), at, n, b.get(), bt, n, &zero, c.get(), ct,
                        n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  CHECK(gemm(CUDA_R_16BF, CUDA_R_16BF, CUDA_R_16BF) == CUBLAS_STATUS_SUCCESS);
  CHECK(gemm(CUDA_R_16BF, CUDA_R_16BF, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
  CHECK(gemm(CUDA_R_32F, CUDA_R_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
  CHECK(gemm(CUDA_R_16BF, CUDA_R_32F, CUDA_R_32F) == CUBLAS_STATUS_NOT_SUPPORTED);
  CHECK(gemm(CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF) == CUBLAS_STATUS_NOT_SUPPORTED);
  CHECK(gemm(CUDA_R_32F, CUDA_R_32F, CUDA_R_16BF) == CUBLAS_STATUS_NOT_SUPPORTED);
  be->synchronize();
  std::vector<float> got(n * n);
  be->download(got.data(), Tensor(c.get(), DType::F32, {n, n}));
  CHECK(got[0] == float(n));  // the last product run: fp32 ones times ones
  cublasDestroy(h);
}
