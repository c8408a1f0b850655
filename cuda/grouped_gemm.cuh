// One grouped GEMM call for the experts' products (Backend::matmul_grouped): the problems in
// cuBLAS's column-major view, one group each, through cublasGemmGroupedBatchedEx.
#pragma once

#include "check.cuh"
#include "core/backend.h"

#include <vector>

namespace am::cuda {

// C (m,n) = alpha op(A) op(B) + beta C, column-major, leading dimensions lda, ldb, ldc.
struct GemmProblem {
  int m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0;
  const void* a = nullptr;
  const void* b = nullptr;
  float* c = nullptr;
};

// Every problem with the same ta, tb, alpha and beta; A and B of ab_type (CUDA_R_32F, or
// CUDA_R_16BF with fp32 accumulation), C fp32. The device arrays of pointers that the call reads
// are written by one kernel whose arguments carry them (no host-to-device copy, no host
// synchronisation), kMaxGroups problems per call.
inline constexpr int kMaxGroups = 64;
void gemm_grouped(Backend& be, cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb,
                  const std::vector<GemmProblem>& problems, cudaDataType ab_type, float alpha, float beta);

}  // namespace am::cuda
