// The simulator's cuBLAS: the two GEMMs the CUDA backend calls, on OpenBLAS, with cuBLAS's
// column-major conventions (op(A) is m x k, op(B) k x n, C m x n, leading dimensions checked).
//  - cublasSgemm: fp32 SGEMM.
//  - cublasGemmEx with bf16 A and B, fp32 C, CUBLAS_COMPUTE_32F: the operands widened to fp32
//    (exact) and one SGEMM, so every product is the fp32 product of the rounded operands and the
//    sums are fp32, as on the GPU (up to summation order).
// Each call is one operation on the handle's stream; the memory checker sees exactly the elements
// a GEMM reads and writes (C is read only when beta != 0).
#include "sim_internal.h"

#include <cblas.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <fmt/format.h>

#include <cstring>
#include <vector>

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

using am::sim::runtime_access;

// Bytes a column-major rows x cols matrix with leading dimension ld spans.
size_t span_bytes(int rows, int cols, int ld, size_t elem) {
  if (rows == 0 || cols == 0) return 0;
  return (size_t(cols - 1) * size_t(ld) + size_t(rows)) * elem;
}

cublasStatus_t check_dims(const char* what, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda,
                          int ldb, int ldc) {
  const int a_rows = ta == CUBLAS_OP_N ? m : k, b_rows = tb == CUBLAS_OP_N ? k : n;
  if (m < 0 || n < 0 || k < 0 || lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m) ||
      (ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T)) {
    std::fprintf(stderr, "[cuda-sim] %s: invalid m %d n %d k %d lda %d ldb %d ldc %d\n", what, m, n, k, lda, ldb, ldc);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  return CUBLAS_STATUS_SUCCESS;
}

void gemm_f32(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const float* a, int lda,
              const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
              m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

std::vector<float> widen(const __nv_bfloat16* p, size_t count) {
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = __bfloat162float(p[i]);
  return out;
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  *handle = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t* stream) {
  *stream = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS (simulator: unexpected)";
  }
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                              float* C, int ldc) {
  if (auto st = check_dims("cublasSgemm", ta, tb, m, n, k, lda, ldb, ldc); st != CUBLAS_STATUS_SUCCESS) return st;
  const float al = *alpha, be = *beta;  // host pointer mode
  am::sim::enqueue(handle->stream, "cublasSgemm", [=] {
    const char* what = "cublasSgemm";
    if (k > 0 && al != 0) {
      runtime_access(A, span_bytes(ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda, 4), false, true, what);
      runtime_access(B, span_bytes(tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb, 4), false, true, what);
    }
    if (be != 0) runtime_access(C, span_bytes(m, n, ldc, 4), false, true, what);
    runtime_access(C, span_bytes(m, n, ldc, 4), true, false, what);
    am::sim::ArenaOpen open;
    gemm_f32(ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc);
  });
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (Atype != CUDA_R_16BF || Btype != CUDA_R_16BF || Ctype != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F) {
    std::fprintf(stderr, "[cuda-sim] cublasGemmEx: only bf16 A and B, fp32 C, CUBLAS_COMPUTE_32F are simulated\n");
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (auto st = check_dims("cublasGemmEx", ta, tb, m, n, k, lda, ldb, ldc); st != CUBLAS_STATUS_SUCCESS) return st;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  const auto* a16 = static_cast<const __nv_bfloat16*>(A);
  const auto* b16 = static_cast<const __nv_bfloat16*>(B);
  float* c = static_cast<float*>(C);
  am::sim::enqueue(handle->stream, "cublasGemmEx", [=] {
    const char* what = "cublasGemmEx";
    const size_t a_bytes = span_bytes(ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda, 2);
    const size_t b_bytes = span_bytes(tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb, 2);
    if (k > 0 && al != 0) {
      runtime_access(a16, a_bytes, false, true, what);
      runtime_access(b16, b_bytes, false, true, what);
    }
    if (be != 0) runtime_access(c, span_bytes(m, n, ldc, 4), false, true, what);
    runtime_access(c, span_bytes(m, n, ldc, 4), true, false, what);
    am::sim::ArenaOpen open;
    const std::vector<float> a32 = widen(a16, a_bytes / 2), b32 = widen(b16, b_bytes / 2);
    gemm_f32(ta, tb, m, n, k, al, a32.data(), lda, b32.data(), ldb, be, c, ldc);
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
