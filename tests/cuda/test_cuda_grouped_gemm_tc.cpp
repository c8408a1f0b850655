// The tensor-core grouped GEMM (cuda/grouped_gemm_tc.cu, cuda::gemm_grouped_tc: bf16 A and B,
// fp32 or bf16 C per problem, fp32 accumulation) alone, against a double-precision reference of
// the same bf16 products, on ragged problems: m, n, k from {1, 7, 16, 17, 33, 100, 300} (none a
// whole tile), empty problems (m or n of 0) in the list and k = 0, both ta and tb, beta 0 (C holds
// NaN: it must not be read) and 1, alpha 0.75, leading dimensions above the minimum and operands
// starting off 16-byte alignment (the element-wise load path) as well as aligned ones (16-byte
// loads), and k of 20000 (a weight gradient's reduction over rows).
// Tolerances, per entry, with S = |alpha| sum_k |a b| + |beta c0| (the reference in double):
//  - fp32 C: 1e-5 S. The products of bf16 values are exact in fp32; the kernel adds them in fp32 in
//    its own order (the GPU's tensor cores in an undocumented one), so the error is a multiple of
//    fp32's 6e-8 relative to the running sums, far below 1e-5 S even for k = 20000;
//  - bf16 C: that plus one bf16 ulp of the reference (2^-7 relative at most: the fp32 value may
//    round to the neighbouring bf16 value), and the result must be a bf16 value (it is stored so).
// Elements of C outside the problem (rows m..ldc-1 of each column, empty problems' C) keep their
// bits. And the launch count: one call makes one kernel launch per kMaxGroups problems and no
// cuBLAS call (the simulator's counters; the backend's matmul_grouped under bf16 likewise, in
// GroupedGemm::Auto and Kernel; Library is one cublasGemmEx per problem, within the same tolerance).
#include "core/bf16.h"
#include "core/device_counts.h"
#include "cuda_test_util.h"
#include "grouped_gemm.cuh"
#include "stream.cuh"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <vector>

using namespace am;
using namespace am::test;

namespace {

// One problem: host copies of its stored operands (column-major, leading dimensions, `a_off` /
// `b_off` elements into their buffers) and C, and device buffers of exactly their extent (so that
// the simulator reports any read past them).
struct Problem {
  int m, n, k, lda, ldb, ldc;
  bool c16;
  int a_off, b_off;
  std::vector<uint16_t> a, b;  // bf16 bits
  std::vector<float> c0;       // C's initial values (bf16 values when c16), ldc (n - 1) + m of them
  Buffer da, db, dc;
};

size_t extent(int rows, int cols, int ld) { return rows > 0 && cols > 0 ? size_t(ld) * (cols - 1) + rows : 0; }

std::vector<uint16_t> random_bf16(size_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = f32_to_bf16_bits(d(rng));
  return v;
}

// m, n, k, lda - min, ldb - min, ldc - min (ldc padding made even for a bf16 C), offsets.
Problem make_problem(Backend& be, bool ta, bool tb, int m, int n, int k, int pad, int off, bool c16, bool nan_c,
                     std::mt19937_64& rng) {
  Problem p{};
  p.m = m, p.n = n, p.k = k, p.c16 = c16, p.a_off = off, p.b_off = off;
  const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
  p.lda = std::max(1, ar + pad);
  p.ldb = std::max(1, br + pad);
  p.ldc = std::max(1, m + pad);
  // The simulator checks device memory per 4-byte word: a bf16 C keeps every column 4-byte aligned
  // so that neighbouring tiles (other blocks) never share a word (grouped_gemm_tc.cu's header).
  if (c16 && p.ldc % 2) ++p.ldc;
  p.a = random_bf16(size_t(off) + extent(ar, ac, p.lda), rng);
  p.b = random_bf16(size_t(off) + extent(br, bc, p.ldb), rng);
  std::normal_distribution<float> d(0.f, 1.f);
  p.c0.resize(std::max<size_t>(extent(m, n, p.ldc), 1));
  for (auto& x : p.c0) {
    x = nan_c ? std::numeric_limits<float>::quiet_NaN() : d(rng);
    if (c16) x = bf16_bits_to_f32(f32_to_bf16_bits(x));
  }
  auto upload = [&](Buffer& dst, const void* src, size_t bytes) {
    dst = be.alloc(std::max<size_t>(bytes, 4));
    if (bytes) cuda::copy_from_host(dst.get(), src, bytes);
  };
  upload(p.da, p.a.data(), p.a.size() * 2);
  upload(p.db, p.b.data(), p.b.size() * 2);
  if (c16) {
    std::vector<uint16_t> bits(p.c0.size());
    for (size_t i = 0; i < bits.size(); ++i) bits[i] = f32_to_bf16_bits(p.c0[i]);
    upload(p.dc, bits.data(), bits.size() * 2);
  } else {
    upload(p.dc, p.c0.data(), p.c0.size() * 4);
  }
  return p;
}

cuda::GemmProblem gemm_problem(const Problem& p) {
  cuda::GemmProblem q;
  q.m = p.m, q.n = p.n, q.k = p.k, q.lda = p.lda, q.ldb = p.ldb, q.ldc = p.ldc;
  q.a = static_cast<const uint16_t*>(p.da.get()) + p.a_off;
  q.b = static_cast<const uint16_t*>(p.db.get()) + p.b_off;
  q.c = p.dc.get();
  q.c_type = p.c16 ? CUDA_R_16BF : CUDA_R_32F;
  return q;
}

// C read back as floats.
std::vector<float> result(const Problem& p) {
  std::vector<float> out(p.c0.size());
  if (p.c16) {
    std::vector<uint16_t> bits(out.size());
    cuda::copy_to_host(bits.data(), p.dc.get(), bits.size() * 2);
    for (size_t i = 0; i < out.size(); ++i) out[i] = bf16_bits_to_f32(bits[i]);
  } else {
    cuda::copy_to_host(out.data(), p.dc.get(), out.size() * 4);
  }
  return out;
}

bool same_bits(float x, float y) { return std::memcmp(&x, &y, sizeof(x)) == 0; }

// One bf16 ulp at |x|'s binade (2^-7 of its power of two).
double bf16_ulp(double x) {
  int e = 0;
  std::frexp(x, &e);
  return x == 0 ? 0.0 : std::ldexp(1.0, e - 8);
}

// Every entry of C within the tolerances of the header; entries outside the problem unchanged.
void check(const Problem& p, bool ta, bool tb, double alpha, double beta) {
  INFO("m " << p.m << " n " << p.n << " k " << p.k << " lda " << p.lda << " ldb " << p.ldb << " ldc " << p.ldc << " C "
            << (p.c16 ? "bf16" : "fp32") << " offset " << p.a_off);
  const std::vector<float> got = result(p);
  auto A = [&](int i, int kk) {  // op(A)(i, kk)
    const size_t at = ta ? kk + size_t(i) * p.lda : i + size_t(kk) * p.lda;
    return double(bf16_bits_to_f32(p.a[size_t(p.a_off) + at]));
  };
  auto B = [&](int kk, int j) {  // op(B)(kk, j)
    const size_t at = tb ? j + size_t(kk) * p.ldb : kk + size_t(j) * p.ldb;
    return double(bf16_bits_to_f32(p.b[size_t(p.b_off) + at]));
  };
  int bad = 0;
  for (int j = 0; j < p.n; ++j) {
    for (int i = 0; i < p.ldc && size_t(i) + size_t(j) * p.ldc < got.size(); ++i) {
      const size_t at = size_t(i) + size_t(j) * p.ldc;
      if (i >= p.m) {  // padding between columns: untouched
        if (!same_bits(got[at], p.c0[at]) && bad++ < 5) FAIL_CHECK("padding (" << i << ", " << j << ") changed");
        continue;
      }
      double s = 0, sabs = 0;
      for (int kk = 0; kk < p.k; ++kk) {
        s += A(i, kk) * B(kk, j);
        sabs += std::fabs(A(i, kk) * B(kk, j));
      }
      const double c0 = beta != 0 ? double(p.c0[at]) : 0.0;
      const double ref = alpha * s + beta * c0;
      double tol = 1e-5 * (std::fabs(alpha) * sabs + std::fabs(beta * c0));
      if (p.c16) {
        tol += bf16_ulp(ref);
        if (got[at] != bf16_bits_to_f32(f32_to_bf16_bits(got[at])) && bad++ < 5) FAIL_CHECK("not a bf16 value");
      }
      if (!(std::fabs(double(got[at]) - ref) <= tol) && bad++ < 5) {
        FAIL_CHECK("C(" << i << ", " << j << ") = " << got[at] << ", reference " << ref << ", tolerance " << tol);
      }
    }
  }
  if (p.m == 0 || p.n == 0) {  // an empty problem: its C untouched
    for (size_t at = 0; at < got.size(); ++at) {
      if (!same_bits(got[at], p.c0[at]) && bad++ < 5) FAIL_CHECK("empty problem's C changed at " << at);
    }
  }
  CHECK(bad == 0);
}

cublasOperation_t op(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

// What f queued on the device (simulator only: empty on a GPU).
std::optional<DeviceCounts> counted(Backend& be, const std::function<void()>& f) {
  be.synchronize();
  reset_device_counts();
  f();
  return device_counts();
}

}  // namespace

TEST_CASE("cuda gemm_grouped_tc matches a double reference on ragged bf16 problems", "[cuda][bf16][gemm-tc]") {
  auto be = make_cuda_backend(DType::F32, 0, /*bf16_matmul=*/true);
  // (m, n, k): every size in every role, none filling the 64 x 64 x 32 tiles (16: mma's own
  // shape); two empty problems and k = 0 (C = beta C).
  const int shapes[][3] = {{1, 1, 1},   {7, 16, 17},    {17, 7, 33},   {33, 100, 7},  {100, 33, 16},
                           {0, 7, 7},   {300, 17, 100}, {16, 300, 33}, {7, 0, 16},    {17, 33, 300},
                           {100, 1, 7}, {1, 100, 300},  {7, 5, 0},     {300, 100, 17}};
  std::mt19937_64 rng(11);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (double beta : {0.0, 1.0}) {
        DYNAMIC_SECTION("ta " << ta << " tb " << tb << " beta " << beta) {
          const double alpha = 0.75;
          std::vector<Problem> ps;
          std::vector<cuda::GemmProblem> qs;
          int i = 0;
          for (const auto& s : shapes) {  // C alternates fp32 / bf16; leading dimensions tight or +3,
            const int pad = i % 3 == 1 ? 3 : 0, off = i % 4 == 2 ? 1 : 0;  // some operands off 16 bytes
            ps.push_back(make_problem(*be, ta, tb, s[0], s[1], s[2], pad, off, i % 2 == 1, beta == 0, rng));
            ++i;
          }
          for (const Problem& p : ps) qs.push_back(gemm_problem(p));
          const auto n = counted(*be, [&] { cuda::gemm_grouped_tc(op(ta), op(tb), qs, float(alpha), float(beta)); });
          for (const Problem& p : ps) check(p, ta, tb, alpha, beta);
          if (n) {
            CHECK(n->kernel_launches == 1);
            CHECK(n->launches == 1);
          }
        }
      }
    }
  }
}

TEST_CASE("cuda gemm_grouped_tc: a weight gradient's long reduction (k = 20000)", "[cuda][bf16][gemm-tc]") {
  auto be = make_cuda_backend(DType::F32, 0, /*bf16_matmul=*/true);
  std::mt19937_64 rng(12);
  // dW (m, n) += dY^T X: op(A) = dY^T, op(B) = X, k = rows; one fp32 C, one bf16 C.
  std::vector<Problem> ps;
  ps.push_back(make_problem(*be, true, false, 33, 17, 20000, 0, 0, false, false, rng));
  ps.push_back(make_problem(*be, true, false, 8, 9, 20000, 1, 1, true, false, rng));
  std::vector<cuda::GemmProblem> qs;
  for (const Problem& p : ps) qs.push_back(gemm_problem(p));
  cuda::gemm_grouped_tc(CUBLAS_OP_T, CUBLAS_OP_N, qs, 1.f, 1.f);
  for (const Problem& p : ps) check(p, true, false, 1.0, 1.0);
}

TEST_CASE("cuda gemm_grouped_tc: more problems than one launch takes", "[cuda][bf16][gemm-tc]") {
  auto be = make_cuda_backend(DType::F32, 0, /*bf16_matmul=*/true);
  std::mt19937_64 rng(13);
  std::vector<Problem> ps;
  for (int i = 0; i < cuda::kMaxGroups + 6; ++i) {
    ps.push_back(make_problem(*be, false, true, 1 + i % 5, 2 + i % 3, 3 + i % 7, i % 2, 0, i % 3 == 0, false, rng));
  }
  std::vector<cuda::GemmProblem> qs;
  for (const Problem& p : ps) qs.push_back(gemm_problem(p));
  const auto n = counted(*be, [&] { cuda::gemm_grouped_tc(CUBLAS_OP_N, CUBLAS_OP_T, qs, -1.5f, 1.f); });
  for (const Problem& p : ps) check(p, false, true, -1.5, 1.0);
  if (n) {
    CHECK(n->kernel_launches == 2);
    CHECK(n->launches == 2);
  }
}

TEST_CASE("cuda bf16 matmul_grouped: 8 live experts are one kernel launch and no cuBLAS call",
          "[cuda][bf16][gemm-tc]") {
  Pair p(/*bf16_matmul=*/true);
  const std::vector<int64_t> off = {0, 5, 40, 41, 60, 60, 90, 91, 130, 160};  // 9 experts, expert 4 empty
  const int64_t K = 48, N = 40, rows = off.back(), n = int64_t(off.size()) - 1;
  FloatTwin x(p, DType::BF16, {rows, K}, randn(size_t(rows * K), 41));
  FloatTwin w(p, DType::BF16, {n * N * K}, randn(size_t(n * N * K), 42));
  FloatTwin y(p, DType::BF16, {rows, N}, randn(size_t(rows * N), 43));
  auto views = [&](bool gpu, std::vector<Tensor>& xs, std::vector<Tensor>& ws, std::vector<Tensor>& ys) {
    const Tensor X = gpu ? x.g : x.c, W = gpu ? w.g : w.c, Y = gpu ? y.g : y.c;
    for (int64_t e = 0; e < n; ++e) {
      xs.push_back(X.rows(off[e], off[e + 1] - off[e]));
      ys.push_back(Y.rows(off[e], off[e + 1] - off[e]));
      ws.push_back(Tensor(static_cast<uint16_t*>(W.data) + e * N * K, DType::BF16, {N, K}));
    }
  };
  std::vector<Tensor> xg, wg, yg, xc, wc, yc;
  views(true, xg, wg, yg);
  views(false, xc, wc, yc);
  p.cpu->matmul_grouped(yc, xc, false, wc, true, 1.0, 0.0);
  const std::vector<float> r = y.cpu(p);
  float top = 0;
  for (float v : r) top = std::max(top, std::fabs(v));
  // Auto (these problems are far below kGroupedKernelMaxMacs: the kernel), then each forced mode.
  for (const auto mode : {Backend::GroupedGemm::Auto, Backend::GroupedGemm::Kernel, Backend::GroupedGemm::Library}) {
    INFO("mode " << int(mode));
    p.gpu->set_grouped_gemm(mode);
    const auto c = counted(*p.gpu, [&] { p.gpu->matmul_grouped(yg, xg, false, wg, true, 1.0, 0.0); });
    // The CPU rounds its fp32 result once: within one bf16 ulp (8e-3 relative) plus the fp32 sums' 1e-5.
    const std::vector<float> g = y.gpu(p);
    int bad = 0;
    for (size_t i = 0; i < g.size(); ++i) bad += !(std::fabs(g[i] - r[i]) <= 1e-5 * top + 8e-3 * std::fabs(r[i]));
    CHECK(bad == 0);
    if (c && mode != Backend::GroupedGemm::Library) {
      CHECK(c->kernel_launches == 1);
      CHECK(c->launches == 1);  // no cuBLAS call
    } else if (c) {
      CHECK(c->kernel_launches == 0);
      CHECK(c->launches == uint64_t(n - 1));  // one cublasGemmEx per live expert
    }
  }
}

TEST_CASE("cuda grouped_kernel_pays: the kernel while every problem is small, the library above",
          "[cuda][bf16][gemm-tc]") {
  auto problem = [](int m, int n, int k) {
    cuda::GemmProblem q;
    q.m = m, q.n = n, q.k = k;
    return q;
  };
  // tiny's expert products (rows ~512 x 256 x 128) and the largest that still takes the kernel
  CHECK(cuda::grouped_kernel_pays({problem(512, 256, 128), problem(1, 256, 128)}));
  CHECK(cuda::grouped_kernel_pays({problem(1 << 10, 1 << 9, 1 << 9)}));  // exactly 2^28
  // one 732M-sized product (4096 rows x 3072 x 768 ~ 2^33) sends the whole call to the library
  CHECK_FALSE(cuda::grouped_kernel_pays({problem(512, 256, 128), problem(3072, 4096, 768)}));
  CHECK_FALSE(cuda::grouped_kernel_pays({problem(1 << 10, 1 << 9, (1 << 9) + 1)}));
}
