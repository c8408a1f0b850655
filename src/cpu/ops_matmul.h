// Dense matrix product through OpenBLAS (row-major cblas_sgemm / cblas_dgemm).
//
// OpenBLAS's own threading gives results that depend on the thread count (its split of C moves
// with the count and the edge kernels sum in another order: measured on OpenBLAS 0.3.21). So
// OpenBLAS runs single-threaded (CpuBackend sets it) and C is cut into fixed tiles of
// kMatmulTileM x kMatmulTileN, one BLAS call per tile, tiles spread over the OpenMP threads. The
// tiling depends only on (M, N): every element gets the same arithmetic whatever the thread count.
#pragma once

#include <cstdint>

namespace am::cpu {

inline constexpr int64_t kMatmulTileM = 128, kMatmulTileN = 256;

// c (M,N) = alpha * op(a) op(b) + beta * c, with op(a) (M,K) and op(b) (K,N).
// a is stored (M,K), or (K,M) when trans_a; b is stored (K,N), or (N,K) when trans_b.
// beta == 0 overwrites c whatever it held (NaN included).
template <typename T>
void matmul(T* c, const T* a, bool trans_a, const T* b, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
            double beta);

}  // namespace am::cpu
