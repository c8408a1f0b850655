// One grouped GEMM call for the experts' products (Backend::matmul_grouped): the problems in
// cuBLAS's column-major view, one group each, through cublasGemmGroupedBatchedEx (fp32), or the
// project's tensor-core kernel (bf16 operands).
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
  void* c = nullptr;
  cudaDataType c_type = CUDA_R_32F;  // gemm_grouped_tc: CUDA_R_32F or CUDA_R_16BF (gemm_grouped: fp32 only)
};

// Every problem with the same ta, tb, alpha and beta; A and B of ab_type (CUDA_R_32F, or
// CUDA_R_16BF with fp32 accumulation), C fp32. The device arrays of pointers that the call reads
// are written by one kernel whose arguments carry them (no host-to-device copy, no host
// synchronisation), kMaxGroups problems per call.
inline constexpr int kMaxGroups = 64;
void gemm_grouped(Backend& be, cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb,
                  const std::vector<GemmProblem>& problems, cudaDataType ab_type, float alpha, float beta);

// The same problems under bf16 matrix products: bf16 A and B, each C of its own c_type (fp32 or
// bf16: fp32 alpha acc + beta C rounded once, nearest even), fp32 accumulation; ONE hand-written
// tensor-core kernel launch per kMaxGroups problems (grouped_gemm_tc.cu), since
// cublasGemmGroupedBatchedEx takes bf16 A and B only with a bf16 C (cuBLAS's table of type
// combinations) and the gradient products need an fp32 C (beta = 1 accumulates). Problems with
// m or n of 0 are skipped; any k >= 0 and leading dimensions (no alignment needed). On the compute
// stream; deterministic (no atomics, fixed summation order).
void gemm_grouped_tc(cublasOperation_t ta, cublasOperation_t tb, const std::vector<GemmProblem>& problems, float alpha,
                     float beta);

// The same problems as one cublasGemmEx each (bf16 A and B, fp32 accumulation, each C of its
// c_type): cuBLAS's tuned kernels, one launch per problem.
void gemm_each(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb,
               const std::vector<GemmProblem>& problems, float alpha, float beta);

// Backend::GroupedGemm::Auto's rule: the grouped kernel while every problem has at most
// kGroupedKernelMaxMacs multiply-adds (m n k), where a launch per problem costs more than the
// library's better kernels save; the per-problem library GEMMs above it. 2^28 is a guess, not a
// measurement: the tiny configs' expert products (<= 2^24) take the kernel, the 732M configs' at
// B 8 x T 2048 (~2^33) the library; autonomoe-gemm-probe times both on a GPU to set it.
inline constexpr double kGroupedKernelMaxMacs = 268435456.0;  // 2^28
bool grouped_kernel_pays(const std::vector<GemmProblem>& problems);

}  // namespace am::cuda
