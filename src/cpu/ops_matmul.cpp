#include "cpu/ops_matmul.h"

#include "core/error.h"
#include "cpu/parallel.h"

#include <cblas.h>

#include <algorithm>
#include <climits>

namespace am::cpu {

namespace {

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint M, blasint N, blasint K, double alpha, const float* a,
          blasint lda, const float* b, blasint ldb, double beta, float* c, blasint ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, static_cast<float>(alpha), a, lda, b, ldb, static_cast<float>(beta), c,
              ldc);
}

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint M, blasint N, blasint K, double alpha, const double* a,
          blasint lda, const double* b, blasint ldb, double beta, double* c, blasint ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

template <typename T>
void matmul(T* c, const T* a, bool trans_a, const T* b, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
            double beta) {
  AM_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX, "matmul ({}, {}, {}) exceeds BLAS int", M, N, K);
  if (M == 0 || N == 0) return;
  const int64_t tiles_m = (M + kMatmulTileM - 1) / kMatmulTileM;
  const int64_t tiles_n = (N + kMatmulTileN - 1) / kMatmulTileN;
  const int64_t tiles = tiles_m * tiles_n;
  const auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  const blasint lda = static_cast<blasint>(trans_a ? M : K);
  const blasint ldb = static_cast<blasint>(trans_b ? K : N);
  // Tiles are independent; which thread computes one does not change its bits, so the schedule
  // may be dynamic (it balances the load when a core is busy with something else).
#pragma omp parallel for schedule(dynamic, 1) if (tiles > 1 && M * N * K >= 64 * kParallelGrain)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t i0 = (tile / tiles_n) * kMatmulTileM, j0 = (tile % tiles_n) * kMatmulTileN;
    const int64_t m = std::min(kMatmulTileM, M - i0), n = std::min(kMatmulTileN, N - j0);
    T* ct = c + i0 * N + j0;
    // beta == 0 must overwrite: clear c ourselves so that NaN/Inf garbage never leaks through.
    if (beta == 0) {
      for (int64_t i = 0; i < m; ++i) std::fill(ct + i * N, ct + i * N + n, T(0));
    }
    if (K == 0) {  // op(a) op(b) is the zero matrix: c = beta * c
      if (beta != 0 && beta != 1) {
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) ct[i * N + j] = static_cast<T>(beta * ct[i * N + j]);
      }
      continue;
    }
    const T* at = trans_a ? a + i0 : a + i0 * K;  // rows i0.. of op(a)
    const T* bt = trans_b ? b + j0 * K : b + j0;  // columns j0.. of op(b)
    gemm(ta, tb, static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(K), alpha, at, lda, bt, ldb,
         beta, ct, static_cast<blasint>(N));
  }
}

template void matmul<float>(float*, const float*, bool, const float*, bool, int64_t, int64_t, int64_t, double, double);
template void matmul<double>(double*, const double*, bool, const double*, bool, int64_t, int64_t, int64_t, double,
                             double);

}  // namespace am::cpu
